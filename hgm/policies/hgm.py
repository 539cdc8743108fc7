"""The Huxley-Gödel Machine policy (arXiv 2510.21614): clade-metaproductivity Thompson sampling.

- Expand when `n_evals ** alpha >= n_nodes - 1 + expansions in flight`, the failed
  expansions are within their allowance (`failed <= n_evals ** alpha`; see
  `hgm.policies.base.expansion_allowed` for the other `failed_expansions` rules) and the
  scheduler's expansion budget allows it, else evaluate.
- Expand: Thompson-sample a node by its clade: its own measures (worth at most
  `n_pseudo_descendant_evals` pseudo-observations at its own mean) pooled with all its
  descendants' measures, Beta(1 + s, 1 + f). Every evaluated node may be expanded; the
  reference's "positive mean only" rule is `expand_positive_only=True`.
- Evaluate: Thompson-sample by own measures among nodes with unseen tasks, give the
  chosen node an unseen task (random with probability `eval_random_level`, else the next
  one in a fixed shuffled order).
- Cool-down (optional): both Beta parameters times `(B / (B - n)) ** beta`.

The final pick (and its confirmation on held-out tasks) is not the policy's business:
see `hgm.search.selection` and `hgm.search.confirm`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hgm.policies.base import DEFAULT_FAILED_EXPANSIONS, ScheduledPolicy, cooldown_factor, thompson_argmax, validate_failed_rule
from hgm.search.state import SearchView


@dataclass
class HGMConfig:
    alpha: float = 0.6
    beta: float = 1.0
    cooldown: bool = False
    eval_random_level: float = 1.0
    n_pseudo_descendant_evals: float = 10000.0
    expand_positive_only: bool = False
    task_order_seed: int = 0
    failed_expansions: str = DEFAULT_FAILED_EXPANSIONS

    def validate(self) -> None:
        if not self.alpha > 0:
            raise ValueError("alpha must be > 0")
        if self.beta < 0:
            raise ValueError("beta must be >= 0")
        if not 0.0 <= self.eval_random_level <= 1.0:
            raise ValueError("eval_random_level must be in [0, 1]")
        if not self.n_pseudo_descendant_evals > 0:
            raise ValueError("n_pseudo_descendant_evals must be > 0")
        validate_failed_rule(self.failed_expansions)


class HGMPolicy(ScheduledPolicy):
    """HGM's clade-Thompson-sampling policy (see module docstring)."""

    name = "hgm"

    def __init__(self, config: HGMConfig | None = None) -> None:
        super().__init__(config or HGMConfig())

    def scale(self, view: SearchView) -> float:
        return cooldown_factor(view, self.config.beta) if self.config.cooldown else 1.0

    def expandable(self, view: SearchView) -> np.ndarray:
        mask = view.own_evals > 0
        if self.config.expand_positive_only:
            mask &= view.own_successes > 0
        return mask

    def choose_expansion(self, view: SearchView, rng: np.random.Generator, mask: np.ndarray) -> int:
        s, f = view.clade_counts(self.config.n_pseudo_descendant_evals)
        return thompson_argmax(s, f, mask, rng, self.scale(view))

    def choose_evaluation(self, view: SearchView, rng: np.random.Generator, mask: np.ndarray) -> int:
        return thompson_argmax(view.own_successes, view.own_failures, mask, rng, self.scale(view))
