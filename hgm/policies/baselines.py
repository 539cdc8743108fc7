"""Baseline policies: greedy and uniform.

Both use HGM's expand-or-evaluate schedule (`n_evals ** alpha >= expansion attempts`,
failed ones included unless `count_failed_expansions=False`; see `expand_wanted`) and
respect the scheduler's expansion budget, so that only the choice of the node differs:
- greedy: expand the node with the best own mean (ties at random); evaluate the node
  with the best posterior mean (1+s)/(2+n) among those with unseen tasks (pure
  exploitation; unmeasured children start at 1/2). `greedy_eval="thompson"` evaluates
  like HGM instead (Thompson sampling on own measures), isolating the expansion rule.
- uniform: expand a uniformly random evaluated node; evaluate a uniformly random node
  that still has unseen tasks, on a uniformly random unseen task.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hgm.search.state import SearchView
from hgm.policies.base import TaskPicker, expand_wanted, random_argmax, thompson_argmax
from hgm.search.actions import Action, Evaluate, Expand, Wait


@dataclass
class BaselineConfig:
    alpha: float = 0.6
    eval_random_level: float = 1.0
    task_order_seed: int = 0
    greedy_eval: str = "mean"
    count_failed_expansions: bool = True

    def validate(self) -> None:
        if self.greedy_eval not in ("mean", "thompson"):
            raise ValueError("greedy_eval must be 'mean' or 'thompson'")
        if not self.alpha > 0:
            raise ValueError("alpha must be > 0")
        if not 0.0 <= self.eval_random_level <= 1.0:
            raise ValueError("eval_random_level must be in [0, 1]")


class _ScheduledPolicy:
    name = "base"

    def __init__(self, config: BaselineConfig | None = None) -> None:
        self.config = config or BaselineConfig()
        self.config.validate()
        self.tasks = TaskPicker(self.config.eval_random_level, self.config.task_order_seed)

    def choose_expansion(self, view: SearchView, rng: np.random.Generator, mask: np.ndarray) -> int:
        raise NotImplementedError

    def choose_evaluation(self, view: SearchView, rng: np.random.Generator, mask: np.ndarray) -> int:
        raise NotImplementedError

    def next_action(self, view: SearchView, rng: np.random.Generator) -> Action:
        expandable = view.own_evals > 0
        evaluable = view.n_seen < view.n_tasks
        can_expand = view.can_expand and bool(expandable.any())
        wanted = expand_wanted(view, self.config.alpha, self.config.count_failed_expansions)
        if can_expand and (wanted or not evaluable.any()):
            return Expand(int(view.node_ids[self.choose_expansion(view, rng, expandable)]))
        if evaluable.any():
            pos = self.choose_evaluation(view, rng, evaluable)
            return Evaluate(int(view.node_ids[pos]), self.tasks.pick(view, pos, rng))
        return Wait()


class GreedyPolicy(_ScheduledPolicy):
    """Expand the best own mean; evaluate the best posterior mean (or Thompson, see above)."""

    name = "greedy"

    def choose_expansion(self, view: SearchView, rng: np.random.Generator, mask: np.ndarray) -> int:
        mean = view.own_successes / np.maximum(view.own_evals, 1)
        return random_argmax(mean, mask, rng)

    def choose_evaluation(self, view: SearchView, rng: np.random.Generator, mask: np.ndarray) -> int:
        if self.config.greedy_eval == "thompson":
            return thompson_argmax(view.own_successes, view.own_failures, mask, rng)
        posterior_mean = (1.0 + view.own_successes) / (2.0 + view.own_evals)
        return random_argmax(posterior_mean, mask, rng)


class UniformPolicy(_ScheduledPolicy):
    """Expand and evaluate uniformly random nodes."""

    name = "uniform"

    def choose_expansion(self, view: SearchView, rng: np.random.Generator, mask: np.ndarray) -> int:
        idx = np.flatnonzero(mask)
        return int(idx[rng.integers(idx.size)])

    def choose_evaluation(self, view: SearchView, rng: np.random.Generator, mask: np.ndarray) -> int:
        idx = np.flatnonzero(mask)
        return int(idx[rng.integers(idx.size)])
