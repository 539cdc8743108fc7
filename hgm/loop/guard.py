"""A policy wrapper that keeps failed expansions from starving evaluation.

HGM's expand rule (`n_evals ** alpha >= n_nodes - 1 + expansions in flight`) counts
nodes, and a failed expansion adds no node; in the public reference a failed child
still became a (zero-scoring) node. With a weak model whose expansions all fail, the
rule therefore asks to expand again and again and the evaluation budget is never spent:
the run never ends. `ExpansionGuard` restores the reference's accounting without
touching the policies: an expansion is allowed only while `n_evals ** alpha >=
attempts` where attempts = nodes - 1 + in flight + failed; otherwise the wrapped
policy's own evaluation choice is used. A hard cap on expansion attempts (ok + failed
+ in flight) bounds policies without an alpha rule (DGM) too; once the cap is reached
and nothing is left to evaluate, the search ends.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hgm.loop.state import SearchView
from hgm.policies.base import Action, Evaluate, Expand, TaskPicker, Wait, thompson_argmax


class ExpansionGuard:
    """Wraps a policy; see the module docstring."""

    def __init__(self, inner: Any, *, alpha: float | None, count_failed: bool = True,
                 max_attempts: int | None = None, task_order_seed: int = 0) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "policy")
        self.alpha = alpha
        self.count_failed = count_failed
        self.max_attempts = max_attempts
        self._tasks = getattr(inner, "tasks", None) or TaskPicker(1.0, task_order_seed)

    @staticmethod
    def attempts(view: SearchView) -> int:
        return view.n_nodes - 1 + view.expansions_in_flight + view.expansions_failed

    def capped(self, view: SearchView) -> bool:
        return self.max_attempts is not None and self.attempts(view) >= self.max_attempts

    def alpha_blocked(self, view: SearchView) -> bool:
        if not self.count_failed or self.alpha is None:
            return False
        return float(view.evals_used) ** self.alpha < self.attempts(view)

    def next_action(self, view: SearchView, rng: np.random.Generator) -> Action:
        action = self.inner.next_action(view, rng)
        if not isinstance(action, Expand):
            return action
        capped = self.capped(view)
        if not capped and not self.alpha_blocked(view):
            return action
        evaluable = view.n_seen < view.n_tasks
        if evaluable.any():
            choose = getattr(self.inner, "choose_evaluation", None)
            if choose is not None:
                pos = int(choose(view, rng, evaluable))
            else:
                pos = thompson_argmax(view.own_successes, view.own_failures, evaluable, rng)
            return Evaluate(int(view.node_ids[pos]), self._tasks.pick(view, pos, rng))
        return Wait() if capped else action
