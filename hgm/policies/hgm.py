"""The Huxley-Gödel Machine policy (arXiv 2510.21614): clade-metaproductivity Thompson sampling.

- Expand when `n_evals ** alpha >= n_nodes - 1 + expansions in flight + failed
  expansions` (`count_failed_expansions=False` leaves the failed ones out) and the
  scheduler's expansion budget allows it, else evaluate.
- Expand: Thompson-sample a node by its clade: its own measures (worth at most
  `n_pseudo_descendant_evals` pseudo-observations at its own mean) pooled with all its
  descendants' measures, Beta(1 + s, 1 + f). Every evaluated node may be expanded; the
  reference's "positive mean only" rule is `expand_positive_only=True`.
- Evaluate: Thompson-sample by own measures among nodes with unseen tasks, give the
  chosen node an unseen task (random with probability `eval_random_level`, else the next
  one in a fixed shuffled order).
- Cool-down (optional): both Beta parameters times `(B / (B - n)) ** beta`.
- Confirmation phase (optional, `confirm_fraction > 0`): the last fraction of the
  evaluation budget goes to re-measuring the `confirm_top_k` best candidates (by the
  final-choice rule) on fresh tasks instead of growing the tree, so the agent that is
  shipped is one whose score has been checked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hgm.search import selection
from hgm.search.state import SearchView
from hgm.policies.base import TaskPicker, cooldown_factor, expand_wanted, thompson_argmax
from hgm.search.actions import Action, Evaluate, Expand, Wait


@dataclass
class HGMConfig:
    alpha: float = 0.6
    beta: float = 1.0
    cooldown: bool = False
    eval_random_level: float = 1.0
    n_pseudo_descendant_evals: float = 10000.0
    expand_positive_only: bool = False
    confirm_fraction: float = 0.0
    confirm_top_k: int = 3
    confirm_rule: str = selection.DEFAULT_RULE
    task_order_seed: int = 0
    count_failed_expansions: bool = True

    def validate(self) -> None:
        if not self.alpha > 0:
            raise ValueError("alpha must be > 0")
        if self.beta < 0:
            raise ValueError("beta must be >= 0")
        if not 0.0 <= self.eval_random_level <= 1.0:
            raise ValueError("eval_random_level must be in [0, 1]")
        if not self.n_pseudo_descendant_evals > 0:
            raise ValueError("n_pseudo_descendant_evals must be > 0")
        if not 0.0 <= self.confirm_fraction < 1.0:
            raise ValueError("confirm_fraction must be in [0, 1)")
        if self.confirm_top_k < 1:
            raise ValueError("confirm_top_k must be >= 1")
        if self.confirm_rule not in selection.RULES:
            raise ValueError(f"confirm_rule must be one of {', '.join(selection.RULES)}")


class HGMPolicy:
    """HGM's clade-Thompson-sampling policy (see module docstring)."""

    name = "hgm"

    def __init__(self, config: HGMConfig | None = None) -> None:
        self.config = config or HGMConfig()
        self.config.validate()
        self.tasks = TaskPicker(self.config.eval_random_level, self.config.task_order_seed)

    # The two choices are separate methods so tests (and other policies) can use them.
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

    def in_confirmation(self, view: SearchView) -> bool:
        cfg = self.config
        if cfg.confirm_fraction <= 0 or view.budget_evals is None:
            return False
        return view.evals_used >= (1.0 - cfg.confirm_fraction) * view.budget_evals

    def next_action(self, view: SearchView, rng: np.random.Generator) -> Action:
        evaluable = view.n_seen < view.n_tasks
        if self.in_confirmation(view):
            top = selection.top_positions(view, self.config.confirm_top_k, self.config.confirm_rule)
            mask = np.zeros(view.n_nodes, dtype=bool)
            mask[top] = True
            mask &= evaluable
            if mask.any():
                return self._evaluate(view, rng, self.choose_evaluation(view, rng, mask))
        expandable = self.expandable(view)
        can_expand = view.can_expand and bool(expandable.any())
        if can_expand and expand_wanted(view, self.config.alpha, self.config.count_failed_expansions):
            return Expand(int(view.node_ids[self.choose_expansion(view, rng, expandable)]))
        if evaluable.any():
            return self._evaluate(view, rng, self.choose_evaluation(view, rng, evaluable))
        if can_expand:
            return Expand(int(view.node_ids[self.choose_expansion(view, rng, expandable)]))
        return Wait()

    def _evaluate(self, view: SearchView, rng: np.random.Generator, pos: int) -> Evaluate:
        return Evaluate(int(view.node_ids[pos]), self.tasks.pick(view, pos, rng))
