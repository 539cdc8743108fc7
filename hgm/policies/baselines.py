"""Baseline policies: greedy and uniform.

Both use HGM's expand-or-evaluate schedule (`expansion_allowed` / `expansion_due` in
`hgm.policies.base`, with the same rule for failed expansions) and respect the
scheduler's expansion budget, so that only the choice of the node differs:
- greedy, as in the HGM paper: Thompson sampling on the node's OWN measures,
  Beta(1 + s, 1 + f), both to pick the node to expand (among evaluated nodes) and the
  node to evaluate (among nodes with unseen tasks). No clade pooling: that is what HGM
  adds. `greedy_rule="mean"` is the older deterministic variant (expand the best own
  mean, evaluate the best posterior mean), a weaker baseline kept for comparison.
- uniform: expand a uniformly random evaluated node; evaluate a uniformly random node
  that still has unseen tasks, on a uniformly random unseen task.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hgm.policies.base import (
    DEFAULT_FAILED_EXPANSIONS,
    ScheduledPolicy,
    random_argmax,
    thompson_argmax,
    validate_failed_rule,
)
from hgm.search.state import SearchView

GREEDY_RULES = ("thompson", "mean")


@dataclass
class BaselineConfig:
    alpha: float = 0.6
    eval_random_level: float = 1.0
    task_order_seed: int = 0
    greedy_rule: str = "thompson"
    failed_expansions: str = DEFAULT_FAILED_EXPANSIONS

    def validate(self) -> None:
        if self.greedy_rule not in GREEDY_RULES:
            raise ValueError(f"greedy_rule must be one of {', '.join(GREEDY_RULES)} (got {self.greedy_rule!r})")
        if not self.alpha > 0:
            raise ValueError("alpha must be > 0")
        if not 0.0 <= self.eval_random_level <= 1.0:
            raise ValueError("eval_random_level must be in [0, 1]")
        validate_failed_rule(self.failed_expansions)


class GreedyPolicy(ScheduledPolicy):
    """Thompson sampling on own measures for both choices (or the deterministic `mean` rule)."""

    name = "greedy"

    def __init__(self, config: BaselineConfig | None = None) -> None:
        super().__init__(config or BaselineConfig())

    def choose_expansion(self, view: SearchView, rng: np.random.Generator, mask: np.ndarray) -> int:
        if self.config.greedy_rule == "mean":
            return random_argmax(view.own_successes / np.maximum(view.own_evals, 1), mask, rng)
        return thompson_argmax(view.own_successes, view.own_failures, mask, rng)

    def choose_evaluation(self, view: SearchView, rng: np.random.Generator, mask: np.ndarray) -> int:
        if self.config.greedy_rule == "mean":
            return random_argmax((1.0 + view.own_successes) / (2.0 + view.own_evals), mask, rng)
        return thompson_argmax(view.own_successes, view.own_failures, mask, rng)


class UniformPolicy(ScheduledPolicy):
    """Expand and evaluate uniformly random nodes."""

    name = "uniform"

    def __init__(self, config: BaselineConfig | None = None) -> None:
        super().__init__(config or BaselineConfig())

    def choose_expansion(self, view: SearchView, rng: np.random.Generator, mask: np.ndarray) -> int:
        idx = np.flatnonzero(mask)
        return int(idx[rng.integers(idx.size)])

    def choose_evaluation(self, view: SearchView, rng: np.random.Generator, mask: np.ndarray) -> int:
        idx = np.flatnonzero(mask)
        return int(idx[rng.integers(idx.size)])
