"""Helpers every policy shares: Thompson draws, tie-breaking, task order, the expand rule.

The interface itself (`Policy`, `Evaluate`, `Expand`, `Wait`) lives in `hgm.search.actions`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def expand_wanted(view: SearchView, alpha: float, count_failed: bool = True) -> bool:
    """HGM's rule: expand when `n_evals ** alpha >= attempts` and `view.can_expand`.

    `n_evals` counts evaluations finished and in flight, as the budget does; attempts =
    nodes - 1 + expansions in flight + failed expansions. A failed expansion adds no node,
    so without counting it a model whose expansions all fail would be asked to expand
    forever and never spend the evaluation budget (`count_failed=False` leaves them out).
    """
    if not view.can_expand:
        return False
    attempts = view.n_nodes - 1 + view.expansions_in_flight
    if count_failed:
        attempts += view.expansions_failed
    return float(view.evals_used) ** alpha >= attempts
