"""Landscapes: the TOML description of a simulated world.

A child's skill follows a lineage random walk:

    jump        ~ N(0, jump_sd)
    child.drift = drift_persistence * parent.drift + N(0, drift_step_sd) + drift_jump_coupling * jump
    child.skill = clip(parent.skill + child.drift + jump, 0, 1)

so a version's current skill need not reveal how good its descendants will be (with
`drift_jump_coupling < 0` a lucky jump predicts a dead lineage: the mismatch). An
expansion fails (no child) with probability `expansion_failure_prob`. Tasks are either
`uniform` (resolved with probability = skill) or `logistic` (each task has a difficulty
d ~ N(difficulty_mean, difficulty_sd); resolved with probability
sigmoid(logistic_scale * (skill - d))). Durations are lognormal with the given mean and
coefficient of variation. Shipped landscapes live in `hgm/sim/landscapes/*.toml`.

A landscape describes a world only: policies get the same settings as in `hgm run`
(`hgm simulate --config run.toml` and flags), never per-landscape ones.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any


class LandscapeError(ValueError):
    """A landscape file or name that cannot be used."""


@dataclass(frozen=True)
class Landscape:
    name: str
    description: str = ""
    n_tasks: int = 60
    seed_evals: int = 0
    root_skill: float = 0.1
    root_drift: float = 0.0
    drift_step_sd: float = 0.04
    drift_persistence: float = 1.0
    drift_jump_coupling: float = 0.0
    jump_sd: float = 0.03
    expansion_failure_prob: float = 0.05
    task_model: str = "uniform"
    difficulty_mean: float = 0.5
    difficulty_sd: float = 0.2
    logistic_scale: float = 8.0
    eval_time_mean: float = 1.0
    eval_time_cv: float = 0.0
    expand_time_mean: float = 1.0
    expand_time_cv: float = 0.0

    def validate(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise LandscapeError(f"landscape {self.name!r}: {what}")

        need(self.n_tasks >= 1, "n_tasks must be >= 1")
        need(0 <= self.seed_evals <= self.n_tasks, "seed_evals must be in [0, n_tasks]")
        need(0.0 <= self.root_skill <= 1.0, "root_skill must be in [0, 1]")
        for name in ("drift_step_sd", "jump_sd", "difficulty_sd", "eval_time_cv", "expand_time_cv"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0")
        need(0.0 <= self.expansion_failure_prob < 1.0, "expansion_failure_prob must be in [0, 1)")
        need(self.task_model in ("uniform", "logistic"), "task_model must be 'uniform' or 'logistic'")
        need(self.eval_time_mean > 0 and self.expand_time_mean > 0, "time means must be > 0")


def shipped_landscapes() -> list[str]:
    """Names of the landscapes that ship with the package."""
    folder = resources.files("hgm.sim") / "landscapes"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_landscape(name_or_path: str) -> Landscape:
    """A shipped landscape by name, or a TOML file by path."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.exists():
        if not path.is_file():
            raise LandscapeError(f"landscape file {name_or_path} does not exist")
        text = path.read_text(encoding="utf-8")
        default_name = path.stem
    else:
        resource = resources.files("hgm.sim") / "landscapes" / f"{name_or_path}.toml"
        if not resource.is_file():
            raise LandscapeError(
                f"no landscape named {name_or_path!r}; shipped: {', '.join(shipped_landscapes())} (or give a .toml file)"
            )
        text = resource.read_text(encoding="utf-8")
        default_name = name_or_path
    return parse_landscape(text, default_name)


def parse_landscape(text: str, default_name: str = "custom") -> Landscape:
    """Parse TOML text: flat keys, optionally grouped in [world], [tasks], [time] tables."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LandscapeError(f"landscape {default_name!r} is not valid TOML: {exc}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in ("world", "tasks", "time"):
            flat.update(value)
        else:
            flat[key] = value
    flat.setdefault("name", default_name)
    known = {f.name for f in fields(Landscape)}
    unknown = sorted(set(flat) - known)
    if "policy_options" in unknown:
        raise LandscapeError(f"landscape {flat['name']!r}: [policy_options] is no longer read; give policy settings "
                             "with `hgm simulate --config run.toml` or flags, as for `hgm run`")
    if unknown:
        raise LandscapeError(f"landscape {flat['name']!r}: unknown key(s) {', '.join(unknown)}")
    for f in fields(Landscape):
        default = "" if f.name == "name" else f.default
        if f.name in flat and not _type_ok(default, flat[f.name]):
            raise LandscapeError(f"landscape {flat['name']!r}: {f.name} must be a {_type_name(default)}, got {flat[f.name]!r}")
    landscape = Landscape(**flat)
    landscape.validate()
    return landscape


def _type_ok(default: Any, value: Any) -> bool:
    if isinstance(value, bool):
        return isinstance(default, bool)
    if isinstance(default, int) and not isinstance(default, bool):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return isinstance(value, str)


def _type_name(default: Any) -> str:
    if isinstance(default, int) and not isinstance(default, bool):
        return "whole number"
    if isinstance(default, float):
        return "number"
    return "string"
