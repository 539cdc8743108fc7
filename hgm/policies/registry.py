"""Build a policy by name from plain options (CLI flags, run.toml)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from hgm.search.actions import Policy
from hgm.policies.baselines import BaselineConfig, GreedyPolicy, UniformPolicy
from hgm.policies.dgm import DGMConfig, DGMPolicy
from hgm.policies.hgm import HGMConfig, HGMPolicy

POLICY_NAMES = ("hgm", "dgm", "greedy", "uniform")

_BUILDERS: dict[str, tuple[type, type]] = {
    "hgm": (HGMPolicy, HGMConfig),
    "dgm": (DGMPolicy, DGMConfig),
    "greedy": (GreedyPolicy, BaselineConfig),
    "uniform": (UniformPolicy, BaselineConfig),
}


def policy_options(name: str) -> tuple[str, ...]:
    """The option names the policy `name` accepts."""
    return tuple(f.name for f in fields(_config_type(name)))


def make_policy(name: str, options: dict[str, Any] | None = None, *, ignore_unknown: bool = False) -> Policy:
    """A fresh policy `name` configured by `options` (unknown keys are an error unless
    `ignore_unknown`, which lets one option set serve several policies)."""
    policy_type, config_type = _BUILDERS.get(name, (None, None))
    if policy_type is None:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")
    known = set(policy_options(name))
    options = dict(options or {})
    unknown = sorted(set(options) - known)
    if unknown and not ignore_unknown:
        raise ValueError(f"policy {name!r} has no option {', '.join(unknown)}; it accepts {', '.join(sorted(known))}")
    config = config_type(**{k: v for k, v in options.items() if k in known})
    return policy_type(config)


def _config_type(name: str) -> type:
    if name not in _BUILDERS:
        raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")
    return _BUILDERS[name][1]
