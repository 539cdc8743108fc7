"""The configuration of one evolution run: a pydantic model, TOML loading, CLI overrides.

The defaults are the offline default run (`hgm run` with no options): the bundled mini
suite, the local SmolLM2 model, Docker if an engine answers else the local sandbox, the
HGM policy and a small budget that finishes in minutes. A run's config is frozen into its
archive when the run is created; `hgm resume` reads it back from there.

A TOML file mirrors the model, e.g.::

    suite = "mini"
    model = "openai/gpt-4o-mini"
    workers = 4
    [budget]
    evals = 200
    usd = 5.0
    [policy]
    name = "hgm"
    alpha = 0.6
"""

from __future__ import annotations

import datetime as _dt
import os
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PolicyName = Literal["hgm", "dgm", "greedy", "uniform"]
DEFAULT_MODEL = "local/smollm2"
SandboxName = Literal["auto", "docker", "local"]


class ConfigError(ValueError):
    """A run configuration is invalid; `str(err)` is one line naming what to fix."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BudgetConfig(_Frozen):
    """Whichever budget is spent first ends the run cleanly."""

    evals: int = Field(6, ge=1, description="task evaluations (seed evaluations included)")
    usd: float | None = Field(None, gt=0, description="dollars spent on model calls")
    wall_clock_s: float | None = Field(None, gt=0, description="seconds of wall-clock time")
    expansions: int | None = Field(
        None, ge=0, description="expansion attempts (ok + failed + in flight); None: as many as evaluations"
    )

    def max_expansions(self) -> int:
        return self.evals if self.expansions is None else self.expansions


class PolicyConfig(_Frozen):
    """Which search policy picks the next evaluation or expansion, and its parameters.

    `options` passes any further option of the chosen policy through unchanged (see
    `hgm.policies.registry.policy_options`); it wins over the named fields.
    """

    name: PolicyName = "hgm"
    alpha: float = Field(0.6, gt=0, description="HGM: expand when n_evals**alpha >= n_nodes")
    beta: float = Field(1.0, ge=0, description="HGM: cool-down exponent")
    cooldown: bool = False
    eval_random_level: float = Field(1.0, ge=0, le=1)
    n_pseudo_descendant_evals: float = Field(10_000, gt=0)
    expand_positive_only: bool = Field(
        False, description="HGM reference rule: expand only nodes with a positive mean"
    )
    dgm_first_batch: int = Field(3, ge=1, description="DGM: tasks every new child is measured on")
    dgm_full_batch: int = Field(10, ge=1, description="DGM: tasks a child passing the threshold gets")
    dgm_threshold: float | None = Field(None, ge=0, le=1, description="DGM: score needed for the full batch")
    final_rule: Literal["lineage", "best-belief", "raw-mean"] = Field(
        "lineage",
        description="final choice: lineage (parent-centred prior; ships the best agent in `hgm simulate`), "
        "best-belief (low Beta quantile, as in the HGM paper) or raw-mean",
    )
    final_quantile: float = Field(0.05, gt=0, lt=1, description="best-belief rule: lower quantile")
    count_failed_expansions: bool = Field(
        True, description="hgm/greedy/uniform: failed expansions count as attempts in the expand rule"
    )
    options: dict[str, Any] = Field(default_factory=dict)

    def policy_options(self, seed: int) -> dict[str, Any]:
        """The options handed to `hgm.policies.make_policy(self.name, ...)`."""
        common = {"eval_random_level": self.eval_random_level, "task_order_seed": seed,
                  "count_failed_expansions": self.count_failed_expansions}
        by_name: dict[str, dict[str, Any]] = {
            "hgm": {
                **common,
                "alpha": self.alpha,
                "beta": self.beta,
                "cooldown": self.cooldown,
                "n_pseudo_descendant_evals": self.n_pseudo_descendant_evals,
                "expand_positive_only": self.expand_positive_only,
            },
            "dgm": {
                "first_batch": self.dgm_first_batch,
                "full_batch": max(self.dgm_full_batch, self.dgm_first_batch),
                "threshold": self.dgm_threshold,
                "task_order_seed": seed,
            },
            "greedy": {**common, "alpha": self.alpha},
            "uniform": {**common, "alpha": self.alpha},
        }
        return {**by_name[self.name], **self.options}


AgentProfile = Literal["auto", "local", "provider"]

# Agent limits by model class. Local models are slow and weak: a few steps keep a run in
# minutes. Hosted and self-hosted models get room to read, edit, test and submit, as the
# field's base agents do (up to 250 steps and $3 per SWE-bench instance; 1,800 s per test run).
AGENT_PROFILES: dict[str, dict[str, Any]] = {
    "local": {"solve_step_limit": 4, "improve_step_limit": 4, "solve_timeout_s": 300.0,
              "improve_timeout_s": 600.0, "test_timeout_s": 300.0, "attempt_usd": None},
    "provider": {"solve_step_limit": 100, "improve_step_limit": 100, "solve_timeout_s": 1800.0,
                 "improve_timeout_s": 3600.0, "test_timeout_s": 1800.0, "attempt_usd": 3.0},
}


def agent_profile(model: str, profile: str = "auto") -> str:
    """The limits profile of `model`: `local` for local/ models, `provider` for the rest.

    Scripted and replayed models stand in for providers, so they get provider limits.
    """
    if profile != "auto":
        return profile
    return "local" if model.startswith("local/") else "provider"


class AgentConfig(_Frozen):
    """Limits given to every agent run (solve and improve); unset ones come from the profile."""

    profile: AgentProfile = Field(
        "auto", description="limits by model class: local (local/ models) or provider (everything else)"
    )
    solve_timeout_s: float = Field(300.0, gt=0)
    improve_timeout_s: float = Field(600.0, gt=0)
    solve_step_limit: int = Field(4, ge=1)
    improve_step_limit: int = Field(4, ge=1)
    test_timeout_s: float = Field(300.0, gt=0, description="the agent's own tests and every grading test run")
    attempt_usd: float | None = Field(None, gt=0, description="dollars one attempt (evaluation or expansion) may spend")


class EvolveConfig(_Frozen):
    """How an expansion (self-improvement) is done."""

    include_test_patch: bool = Field(
        False, description="show the hidden test patch to the diagnosis (leaks task tests)"
    )
    diagnose_max_chars: int | None = Field(
        None, ge=1000, description="trajectory/report excerpt size (None: 3000 for local models, else 12000)"
    )
    diagnose_max_tokens: int = Field(512, ge=64)
    diagnose_retries: int = Field(1, ge=0)
    source_max_chars: int | None = Field(
        None, ge=0, description="agent source excerpt size (None: 2500 for local models, else 12000)"
    )

    def budgets(self, model: str) -> tuple[int, int]:
        """(diagnosis excerpt chars, source excerpt chars) for `model`: small local models
        have a 4k-token context and read slowly, so they get far smaller excerpts."""
        local = model.startswith("local/")
        diag = self.diagnose_max_chars if self.diagnose_max_chars is not None else (3000 if local else 12_000)
        source = self.source_max_chars if self.source_max_chars is not None else (2500 if local else 12_000)
        return diag, source

class RunConfig(_Frozen):
    """Everything that defines an evolution run."""

    suite: str = "mini"
    tasks: tuple[str, ...] | None = Field(None, description="task ids to use (default: all of the suite)")
    max_tasks: int | None = Field(None, ge=1, description="use only the first N tasks")
    model: str = DEFAULT_MODEL
    api_base: str | None = Field(None, description="OpenAI-compatible server for the model (vLLM, Ollama, llama.cpp)")
    sandbox: SandboxName = "auto"
    workers: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1, le=256)
    seed: int = Field(0, ge=0, description="random seed (a non-negative integer)")
    seed_evals: int = Field(0, ge=0, description="measure the seed on N tasks before searching")
    grace_period_s: float = Field(60.0, ge=0, description="Ctrl-C: wait this long for work in flight")
    min_free_mb: float = Field(50.0, ge=0, description="stop (disk_full) when less is free where the run lives")
    infra_wait_s: float = Field(300.0, ge=0, description="wait this long for a sandbox engine that stopped answering")
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    evolve: EvolveConfig = Field(default_factory=EvolveConfig)

    @model_validator(mode="before")
    @classmethod
    def _agent_limits_for_the_model(cls, data: Any) -> Any:
        """Fill the agent limits not given explicitly from the model's profile."""
        if not isinstance(data, Mapping):
            return data
        agent = dict(data.get("agent") or {})
        profile = agent_profile(str(data.get("model", DEFAULT_MODEL)), str(agent.get("profile", "auto")))
        if profile not in AGENT_PROFILES:
            return data  # the field validation names the bad value
        agent = {**AGENT_PROFILES[profile], **agent, "profile": profile}
        return {**data, "agent": agent}

    @model_validator(mode="after")
    def _tasks_named(self) -> "RunConfig":
        if self.tasks is not None and (not self.tasks or not all(t.strip() for t in self.tasks)):
            raise ValueError("tasks must name at least one task id (leave it out to use every task)")
        return self

    @model_validator(mode="after")
    def _seed_evals_within_budget(self) -> "RunConfig":
        if self.seed_evals > self.budget.evals:
            raise ValueError(
                f"seed_evals ({self.seed_evals}) exceeds the evaluation budget ({self.budget.evals})"
            )
        return self

    def frozen(self) -> dict[str, Any]:
        """The JSON-able form stored in the archive."""
        return self.model_dump(mode="json")


def _one_line(exc: ValidationError, source: str) -> str:
    """The first validation problem as one line: where, what, and that it came from `source`."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "config"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{source}: {where}: {err.get('msg', 'invalid')}{more}"


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `extra` into a copy of `base` (nested tables merge, values replace)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def load_toml(path: Path) -> dict[str, Any]:
    """Read a run TOML file into a plain dict; raise ConfigError on unreadable input."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def build_config(
    toml_path: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> RunConfig:
    """Defaults, then the TOML file, then `overrides` (nested dict; None values ignored)."""
    data: dict[str, Any] = {}
    source = "defaults"
    if toml_path is not None:
        data = load_toml(toml_path)
        source = str(toml_path)
    if overrides:
        data = _merge(data, _drop_none(overrides))
        source = f"{source} + command-line options" if toml_path else "command-line options"
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, source)) from None


def config_from_frozen(data: Mapping[str, Any]) -> RunConfig:
    """The RunConfig stored in an archive (raise ConfigError if it no longer validates)."""
    try:
        return RunConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, "the run's stored config")) from None


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            nested = _drop_none(value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out


def default_run_dir(now: _dt.datetime | None = None, root: Path = Path("runs")) -> Path:
    """`./runs/<timestamp>` (second resolution; a suffix keeps it unique)."""
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    candidate = root / stamp
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = root / f"{stamp}-{suffix}"
    return candidate
