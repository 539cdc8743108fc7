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
    [grading]
    test_machinery = "strip"
    [gate]
    max_size_ratio = 1.5
    [evaluation]          # trajectory evolution per task (default: one attempt)
    preset = "evolve"     # 5 attempts x 3 generations
    [evolve.operators]    # the operator mix of expansions (default: revise only)
    revise = 2
    recombine = 1
    refine = 1
    [memory]
    bank = "lessons.db"

`executor = "ray"` with a `[ray]` table (`address`, `slot_resource`, `max_retries`) runs
the jobs on a Ray cluster.
"""

from __future__ import annotations

import datetime as _dt
import os
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PolicyName = Literal["hgm", "dgm", "greedy", "uniform"]
DEFAULT_MODEL = "local/smollm2"
SandboxName = Literal["auto", "docker", "local"]
ExecutorName = Literal["threads", "ray"]


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
    """Which search policy picks the next evaluation or expansion, its parameters, and the final pick.

    The one source of policy defaults for `hgm run` and `hgm simulate`: both build their
    policies with `options_for(name, seed)` and their confirmation step from the same
    fields. `options` passes any further option of a policy through unchanged (see
    `hgm.policies.registry.policy_options`); it wins over the named fields.
    """

    name: PolicyName = "hgm"
    alpha: float = Field(0.6, gt=0, description="hgm/greedy/uniform: expand when n_evals**alpha >= children")
    beta: float = Field(1.0, ge=0, description="HGM: cool-down exponent")
    cooldown: bool = False
    eval_random_level: float = Field(1.0, ge=0, le=1)
    n_pseudo_descendant_evals: float = Field(10_000, gt=0, description="HGM: cap on a node's own measures in its clade")
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
    failed_expansions: Literal["allowance", "count", "ignore"] = Field(
        "allowance",
        description="hgm/greedy/uniform: failed expansions within an allowance of n_evals**alpha (allowance), "
        "counted as children (count) or not at all (ignore)",
    )
    confirm: bool = Field(
        False,
        description="reserve budget to re-evaluate the top candidates on held-out tasks before shipping "
        "(off by default: at equal budget it shipped no better agents in `hgm simulate`; see docs/search.md)",
    )
    confirm_share: float = Field(0.1, gt=0, lt=1, description="confirmation: share of the evaluation budget")
    confirm_top_k: int = Field(3, ge=1, description="confirmation: candidates re-evaluated (best by final_rule)")
    confirm_min_tasks: int = Field(5, ge=1, description="confirmation: fewest held-out tasks worth a confirmation")
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _older_names(cls, data: Any) -> Any:
        """Configs frozen by earlier versions said `count_failed_expansions = true/false`."""
        if isinstance(data, Mapping) and "count_failed_expansions" in data:
            data = dict(data)
            counted = data.pop("count_failed_expansions")
            data.setdefault("failed_expansions", "count" if counted else "ignore")
        return data

    def options_for(self, name: str, seed: int) -> dict[str, Any]:
        """The options handed to `hgm.policies.make_policy(name, ...)` in a run (or simulation) with `seed`."""
        common = {"alpha": self.alpha, "eval_random_level": self.eval_random_level, "task_order_seed": seed,
                  "failed_expansions": self.failed_expansions}
        by_name: dict[str, dict[str, Any]] = {
            "hgm": {
                **common,
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
            "greedy": common,
            "uniform": common,
        }
        if name not in by_name:
            raise ValueError(f"unknown policy {name!r}")
        return {**by_name[name], **self.options}

    def policy_options(self, seed: int) -> dict[str, Any]:
        """The options of this config's own policy (`name`)."""
        return self.options_for(self.name, seed)


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


EXPANSION_OPERATORS = ("revise", "recombine", "refine")


class EvolveConfig(_Frozen):
    """How an expansion (self-improvement) is done.

    `operators` weighs the operator each expansion draws: `revise` (diagnose a failure of
    the chosen version and let it improve itself), `recombine` (merge it with a strong
    version outside its lineage) and `refine` (make it cheaper on what it already solves).
    """

    operators: dict[str, float] = Field(
        default_factory=lambda: {"revise": 1.0},
        description="operator weights, e.g. {revise = 2, recombine = 1, refine = 1}",
    )

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

    @field_validator("operators")
    @classmethod
    def _known_operators(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(EXPANSION_OPERATORS))
        if unknown:
            raise ValueError(f"unknown operator(s) {', '.join(unknown)}; use {', '.join(EXPANSION_OPERATORS)}")
        if any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError("operator weights must be >= 0 with a positive sum")
        return value

    def budgets(self, model: str) -> tuple[int, int]:
        """(diagnosis excerpt chars, source excerpt chars) for `model`: small local models
        have a 4k-token context and read slowly, so they get far smaller excerpts."""
        local = model.startswith("local/")
        diag = self.diagnose_max_chars if self.diagnose_max_chars is not None else (3000 if local else 12_000)
        source = self.source_max_chars if self.source_max_chars is not None else (2500 if local else 12_000)
        return diag, source

EVALUATION_PRESETS: dict[str, dict[str, int]] = {
    "single": {"attempts": 1, "generations": 1},  # today's behaviour: one attempt, graded
    "evolve": {"attempts": 5, "generations": 3},  # SE-Agent / EvoScale-style: 5 attempts x 3 generations
}


class EvaluationConfig(_Frozen):
    """How one task evaluation is made: attempts evolved over generations, one selected.

    The first generation runs `attempts` attempts (the first as the agent would alone, the
    others with strategy variants); each further generation runs `attempts` new ones whose
    guidance an operator (revise, recombine, refine) wrote from summaries of the earlier
    ones. Selection sees only what the agent may see; only the selected patch is graded.
    `preset` fills attempts and generations that are not given (`evolve`: 5 x 3).
    """

    preset: Literal["single", "evolve"] | None = None
    attempts: int = Field(1, ge=1, le=50, description="attempts per generation")
    generations: int = Field(1, ge=1, le=20, description="generations (1: independent attempts, best-of-N)")
    max_tokens: int | None = Field(
        None, ge=1, description="tokens one evaluation may use: all attempts and hgm's own calls (hard)"
    )
    max_usd: float | None = Field(None, gt=0, description="dollars one evaluation may spend, all attempts (hard)")
    judge: bool = Field(False, description="let the model pick among the best candidates (listwise)")
    run_tests: bool = Field(True, description="selection runs the repository's tests near the patch")
    summary_max_chars: int | None = Field(
        None, ge=500, description="trajectory excerpt a summary reads (None: 3000 for local models, else 12000)"
    )
    summary_max_tokens: int = Field(400, ge=64, description="reply size of summary, operator and judge calls")

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("preset") in EVALUATION_PRESETS:
            return {**EVALUATION_PRESETS[data["preset"]], **data}
        return data

    @property
    def several(self) -> bool:
        """Whether evaluations make more than one attempt (else: exactly today's single attempt)."""
        return self.attempts * self.generations > 1

    def summary_chars(self, model: str) -> int:
        if self.summary_max_chars is not None:
            return self.summary_max_chars
        return 3000 if model.startswith("local/") else 12_000


class MemoryConfig(_Frozen):
    """The lessons memory (see hgm.evolve.memory): items distilled from expansions, retrieved by diagnoses."""

    enabled: bool = Field(True, description="distil an item after every decided expansion and comparison, "
                          "and show the most relevant ones to each diagnosis")
    bank: str | None = Field(None, description="memory bank file shared between runs (read and appended; "
                             "`hgm run --memory FILE`)")
    k: int = Field(4, ge=0, le=20, description="items shown to a diagnosis")
    prompt_chars: int | None = Field(
        None, ge=200, description="characters of the diagnosis prompt for memory (None: 900 for local models, else 3000)"
    )
    compare_after: int = Field(3, ge=1, description="shared measured tasks before a child is compared with its parent")
    margin: int = Field(1, ge=1, description="tasks won minus lost (child vs parent) that make an item helped or hurt")
    distill_retries: int = Field(1, ge=0)
    distill_max_tokens: int = Field(320, ge=64)
    words: Literal["auto", "model", "fallback"] = Field(
        "auto", description="who words items: the model, or fallback words built from the evidence without a call; "
        "auto: fallback for local/ models (the gateway holds their replies to the agent's action format, "
        "so their JSON never parses)",
    )

    def words_by_model(self, model: str) -> bool:
        """Whether items of a run with `model` are worded by a model call."""
        return self.words == "model" or (self.words == "auto" and not model.startswith("local/"))

    def prompt_budget(self, model: str) -> int:
        """Characters of the diagnosis prompt memory may take, for `model`."""
        if self.prompt_chars is not None:
            return self.prompt_chars
        return 900 if model.startswith("local/") else 3000


class GradingConfig(_Frozen):
    """How patches are graded."""

    test_machinery: Literal["strip", "reject", "allow"] = Field(
        "strip",
        description="patch parts touching test machinery (conftest.py, pytest/tox config, *.pth, sitecustomize.py, "
        "the hidden tests' files): strip them before grading, reject the patch (scored unresolved), or allow them",
    )


class GateConfig(_Frozen):
    """The admission gate every child passes (see hgm.evolve.gate)."""

    protected: tuple[str, ...] | None = Field(
        None, description="protected paths / PATH::FUNCTION entries; None: computed from the seed when the run is "
        "created and frozen here",
    )
    max_size_ratio: float = Field(1.5, gt=1, description="a child may be at most this many times its parent's size")
    max_file_bytes: int = Field(200_000, ge=1000, description="largest file a child may add or change")


class RayConfig(_Frozen):
    """Where `executor = "ray"` runs jobs (see docs/loop.md, "Running on a Ray cluster")."""

    address: str | None = Field(
        None, description="None: a private one-node cluster on this machine; 'auto': the cluster `ray start` "
        "joined here; HOST:PORT: that cluster's head"
    )
    slot_resource: str = Field(
        "docker_slots", min_length=1, description="custom resource a job takes one of (nodes offer it with "
        "`ray start --resources '{\"docker_slots\": N}'`)"
    )
    max_retries: int = Field(3, ge=0, le=20, description="Ray retries of a job whose worker or node was lost")


class RunConfig(_Frozen):
    """Everything that defines an evolution run."""

    suite: str = "mini"
    tasks: tuple[str, ...] | None = Field(None, description="task ids to use (default: all of the suite)")
    max_tasks: int | None = Field(None, ge=1, description="use only the first N tasks")
    model: str = DEFAULT_MODEL
    api_base: str | None = Field(None, description="OpenAI-compatible server for the model (vLLM, Ollama, llama.cpp)")
    sandbox: SandboxName = "auto"
    workers: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1, le=256)
    executor: ExecutorName = Field("threads", description="where jobs run: threads on this machine, or ray tasks")
    ray: RayConfig = Field(default_factory=RayConfig)
    registry: str | None = Field(
        None, description="image registry HOST[:PORT] that task images are pulled from (SWE-bench suites)"
    )
    seed: int = Field(0, ge=0, description="random seed (a non-negative integer)")
    seed_evals: int = Field(0, ge=0, description="measure the seed on N tasks before searching")
    grace_period_s: float = Field(60.0, ge=0, description="Ctrl-C: wait this long for work in flight")
    min_free_mb: float = Field(50.0, ge=0, description="stop (disk_full) when less is free where the run lives")
    infra_wait_s: float = Field(300.0, ge=0, description="wait this long for a sandbox engine that stopped answering")
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    evolve: EvolveConfig = Field(default_factory=EvolveConfig)
    grading: GradingConfig = Field(default_factory=GradingConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)

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
