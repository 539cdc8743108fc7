"""The Darwin Gödel Machine's open-ended archive search, as a policy.

- Every node is measured on a fixed first batch of tasks (the first `first_batch` tasks
  of a fixed shuffled order) as soon as it exists; a node whose first-batch score reaches
  the threshold is measured further, up to `full_batch` tasks in total.
- Pending measurements come first (oldest node first). Otherwise expand: the parent is
  drawn with probability proportional to `sigmoid(10 * (score - 0.5)) / (1 + children)`
  among nodes whose first batch is finished, where `score` is the own mean and
  `children` counts children and expansions in flight.
- Once the scheduler's expansion budget is used up (`view.can_expand` is False), the
  rest of the evaluation budget measures nodes further, chosen by Thompson sampling on
  their own measures (tasks in the fixed order); DGM has no other brake on expansions.
- `threshold=None` means "at least the seed's first-batch score" (DGM's absolute 40 %
  suits a strong seed only); set a number for an absolute threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hgm.search.state import SearchView
from hgm.policies.base import TaskPicker, thompson_argmax
from hgm.search.actions import Action, Evaluate, Expand, Wait


@dataclass
class DGMConfig:
    first_batch: int = 3
    full_batch: int = 10
    threshold: float | None = None
    task_order_seed: int = 0

    def validate(self) -> None:
        if self.first_batch < 1:
            raise ValueError("first_batch must be >= 1")
        if self.full_batch < self.first_batch:
            raise ValueError("full_batch must be >= first_batch")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must be in [0, 1]")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class DGMPolicy:
    """DGM parent selection with staged evaluation (see module docstring)."""

    name = "dgm"

    def __init__(self, config: DGMConfig | None = None) -> None:
        self.config = config or DGMConfig()
        self.config.validate()
        self.tasks = TaskPicker(random_level=0.0, order_seed=self.config.task_order_seed)

    def required_evals(self, view: SearchView) -> np.ndarray:
        """How many tasks each node should be measured on, given what is known now."""
        first = min(self.config.first_batch, view.n_tasks)
        full = min(self.config.full_batch, view.n_tasks)
        n = view.own_evals
        mean = view.own_successes / np.maximum(n, 1)
        threshold = self.config.threshold
        if threshold is None:
            threshold = float(mean[0]) if n[0] >= first else 1.0
        passed = (n >= first) & (mean >= threshold)
        passed[0] = False  # the seed keeps its first-batch score: it is the reference
        return np.where(passed, full, first)

    def parent_weights(self, view: SearchView) -> np.ndarray:
        first = min(self.config.first_batch, view.n_tasks)
        n = view.own_evals
        score = view.own_successes / np.maximum(n, 1)
        weights = sigmoid(10.0 * (score - 0.5)) / (1.0 + view.n_children + view.pending_expansions_per_node)
        return np.where(n >= first, weights, 0.0)

    def next_action(self, view: SearchView, rng: np.random.Generator) -> Action:
        need = (self.required_evals(view) > view.n_seen) & (view.n_seen < view.n_tasks)
        if need.any():
            pos = int(np.flatnonzero(need)[0])
            return Evaluate(int(view.node_ids[pos]), self.tasks.next_in_order(view, pos))
        if not view.can_expand:
            evaluable = view.n_seen < view.n_tasks
            if not evaluable.any():
                return Wait()
            pos = thompson_argmax(view.own_successes, view.own_failures, evaluable, rng)
            return Evaluate(int(view.node_ids[pos]), self.tasks.next_in_order(view, pos))
        weights = self.parent_weights(view)
        total = weights.sum()
        if total <= 0:
            return Wait()
        pos = int(rng.choice(view.n_nodes, p=weights / total))
        return Expand(int(view.node_ids[pos]))
