"""Extending a run: `hgm resume RUN --budget-evals N` (and `--budget-usd`, `--budget-time`).

The frozen config stays as created; `extend_budgets` records a `budget_extended` event
holding the new budgets (and the old ones), and `effective_config` applies the latest
over the frozen config, for every later session.
"""

from __future__ import annotations

from archive.run import Run

from hgm.config import ConfigError, RunConfig, config_from_frozen
from hgm.search.report import earlier_elapsed, spent_so_far

BUDGET_EVENT = "budget_extended"


class BudgetError(ValueError):
    """A budget extension that cannot be applied; the message is one line."""


def effective_config(run: Run) -> RunConfig:
    """The frozen config with the latest budget extension applied (ConfigError if invalid)."""
    config = config_from_frozen(run.config)
    extensions = run.events(BUDGET_EVENT)
    if not extensions:
        return config
    budget = {**config.budget.model_dump(), **(extensions[-1]["payload"].get("budget") or {})}
    return config_from_frozen({**config.frozen(), "budget": budget})


def extend_budgets(run: Run, config: RunConfig, *, evals: int | None = None, usd: float | None = None,
                   wall_clock_s: float | None = None) -> RunConfig:
    """Raise the run's budgets (each must exceed what the run has used); log a `budget_extended` event."""
    changes = {k: v for k, v in (("evals", evals), ("usd", usd), ("wall_clock_s", wall_clock_s)) if v is not None}
    if not changes:
        return config
    used = {"evals": run.tree().n_evals, "usd": spent_so_far(run)[0], "wall_clock_s": earlier_elapsed(run)}
    flags = {"evals": "--budget-evals", "usd": "--budget-usd", "wall_clock_s": "--budget-time"}
    for key, value in changes.items():
        if value <= used[key]:
            raise BudgetError(f"{flags[key]} {value:g} leaves nothing to do: the run has used {used[key]:g} already; "
                              "pass a larger value")
    budget = {**config.budget.model_dump(), **changes}
    try:
        extended = config_from_frozen({**config.frozen(), "budget": budget})
    except ConfigError as exc:
        raise BudgetError(str(exc)) from None
    old = config.budget.model_dump()
    run.log_event(BUDGET_EVENT, {"budget": budget, "before": {k: old[k] for k in changes}})
    return extended
