"""Helpers every policy shares: Thompson draws, tie-breaking, task order, the expand rule.

The interface itself (`Policy`, `Evaluate`, `Expand`, `Wait`) lives in `hgm.search.actions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hgm.search.actions import Action, Evaluate, Expand, Wait
from hgm.search.state import SearchView


def cooldown_factor(view: SearchView, beta: float) -> float:
    """`(B / (B - n)) ** beta`: sharpens Beta posteriors as the budget B runs out."""
    if view.budget_evals is None or view.budget_evals <= 0:
        return 1.0
    budget = float(view.budget_evals)
    used = min(float(view.evals_used), budget - 1.0)
    return (budget / (budget - used)) ** beta


def thompson_argmax(
    successes: np.ndarray, failures: np.ndarray, mask: np.ndarray, rng: np.random.Generator, scale: float = 1.0
) -> int:
    """Position maximising one draw of Beta(scale*(1+s), scale*(1+f)) among `mask`."""
    idx = np.flatnonzero(mask)
    if idx.size == 1:
        return int(idx[0])
    a = scale * (1.0 + successes[idx])
    b = scale * (1.0 + failures[idx])
    return int(idx[int(np.argmax(rng.beta(a, b)))])


def random_argmax(scores: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> int:
    """Position of the largest score among `mask`, ties broken at random."""
    idx = np.flatnonzero(mask)
    vals = scores[idx]
    best = idx[vals >= vals.max()]
    return int(best[rng.integers(best.size)]) if best.size > 1 else int(best[0])


@dataclass
class TaskPicker:
    """Gives a node an unseen task: random with probability `random_level`, else the
    next one in a fixed shuffled order (fixed by `order_seed`, the same for every node)."""

    random_level: float = 1.0
    order_seed: int = 0

    def __post_init__(self) -> None:
        self._orders: dict[int, np.ndarray] = {}

    def order(self, n_tasks: int) -> np.ndarray:
        if n_tasks not in self._orders:
            self._orders[n_tasks] = np.random.default_rng(self.order_seed).permutation(n_tasks)
        return self._orders[n_tasks]

    def pick(self, view: SearchView, pos: int, rng: np.random.Generator) -> str:
        row = view.seen[pos]
        if self.random_level > 0 and (self.random_level >= 1.0 or rng.random() < self.random_level):
            free = np.flatnonzero(~row)
            return view.task_ids[int(free[rng.integers(free.size)])]
        return self.next_in_order(view, pos)

    def next_in_order(self, view: SearchView, pos: int) -> str:
        order = self.order(view.n_tasks)
        free = ~view.seen[pos][order]
        return view.task_ids[int(order[int(np.argmax(free))])]


FAILED_EXPANSION_RULES = ("allowance", "count", "ignore")
DEFAULT_FAILED_EXPANSIONS = "allowance"


def validate_failed_rule(rule: str) -> None:
    if rule not in FAILED_EXPANSION_RULES:
        raise ValueError(f"failed_expansions must be one of {', '.join(FAILED_EXPANSION_RULES)} (got {rule!r})")


def expansion_allowed(view: SearchView, alpha: float, failed_rule: str = DEFAULT_FAILED_EXPANSIONS) -> bool:
    """Whether one more expansion may start at all.

    The scheduler's expansion budget must allow it (`view.can_expand`), and under the
    `allowance` rule the failed expansions must not exceed `n_evals ** alpha`: a model whose
    expansions all fail then tries about `n_evals ** alpha` times in all, so the run spends
    its evaluation budget (or ends when nothing is left to evaluate) instead of expanding
    without end, while occasional failures cost no growth.
    """
    if not view.can_expand:
        return False
    if failed_rule == "allowance":
        return view.expansions_failed <= float(view.evals_used) ** alpha
    return True


def expansion_due(view: SearchView, alpha: float, failed_rule: str = DEFAULT_FAILED_EXPANSIONS) -> bool:
    """HGM's schedule: `n_evals ** alpha >= children + expansions in flight` (+ failed ones under `count`).

    `n_evals` counts evaluations finished and in flight, as the budget does. Rules for failed
    expansions (which add no node): `allowance` (default) leaves them out here and bounds
    them in `expansion_allowed`; `count` counts them as children (a failure costs growth);
    `ignore` leaves them out entirely (a model whose expansions all fail expands until the
    expansion budget is spent).
    """
    attempts = view.n_nodes - 1 + view.expansions_in_flight
    if failed_rule == "count":
        attempts += view.expansions_failed
    return float(view.evals_used) ** alpha >= attempts


class ScheduledPolicy:
    """HGM's expand-or-evaluate schedule around two choices subclasses make.

    `config` needs `alpha`, `eval_random_level`, `task_order_seed` and `failed_expansions`
    (and a `validate()`). Expand when allowed and due (or when nothing is left to
    evaluate), else evaluate a node with unseen tasks, else wait.
    """

    name = "scheduled"

    def __init__(self, config: Any) -> None:
        self.config = config
        self.config.validate()
        self.tasks = TaskPicker(self.config.eval_random_level, self.config.task_order_seed)

    def expandable(self, view: SearchView) -> np.ndarray:
        """Nodes that may be expanded: every evaluated node."""
        return view.own_evals > 0

    def choose_expansion(self, view: SearchView, rng: np.random.Generator, mask: np.ndarray) -> int:
        raise NotImplementedError

    def choose_evaluation(self, view: SearchView, rng: np.random.Generator, mask: np.ndarray) -> int:
        raise NotImplementedError

    def next_action(self, view: SearchView, rng: np.random.Generator) -> Action:
        cfg = self.config
        expandable = self.expandable(view)
        evaluable = view.n_seen < view.n_tasks
        allowed = bool(expandable.any()) and expansion_allowed(view, cfg.alpha, cfg.failed_expansions)
        if allowed and (expansion_due(view, cfg.alpha, cfg.failed_expansions) or not evaluable.any()):
            return Expand(int(view.node_ids[self.choose_expansion(view, rng, expandable)]))
        if evaluable.any():
            pos = self.choose_evaluation(view, rng, evaluable)
            return Evaluate(int(view.node_ids[pos]), self.tasks.pick(view, pos, rng))
        return Wait()
