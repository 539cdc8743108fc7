"""Virtual-time executor: N simulated workers drive the real `Scheduler` and policy.

This is the simulator's counterpart of the real loop's executor: it calls
`Scheduler.dispatch / complete_eval / complete_expansion` exactly as worker threads do,
but runs each job to completion on a virtual clock (an event heap) with the world's
durations and outcomes, so 1 vs 16 workers can be compared without threads.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hgm.search import selection
from hgm.loop.scheduler import Job, Scheduler
from hgm.search.state import SearchState
from hgm.policies import make_policy
from hgm.search.actions import Policy, Wait
from hgm.sim.landscape import Landscape
from hgm.sim.world import World


@dataclass
class RunResult:
    """One simulated run. Lists are aligned with `checkpoints` (evaluations finished)."""

    policy: str
    seed: int
    budget: int
    checkpoints: list[int]
    chosen_skill: dict[str, list[float]]  # per final-choice rule
    best_skill: list[float]  # best true skill anywhere in the tree
    n_nodes: list[int]
    evals_used: int = 0
    failed_expansions: int = 0
    virtual_time: float = 0.0
    compute_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def final(self, rule: str) -> float:
        return self.chosen_skill[rule][-1]


def default_checkpoints(budget: int, step: int = 10) -> list[int]:
    points = list(range(step, budget, step))
    return points + [budget]


def build_policy(landscape: Landscape, name: str, options: dict[str, Any] | None) -> Policy:
    """The policy `name` with the landscape's per-policy defaults, then the caller's options."""
    merged: dict[str, Any] = dict((landscape.policy_options or {}).get(name, {}))
    merged.update(options or {})
    return make_policy(name, merged, ignore_unknown=True)


def simulate_run(
    landscape: Landscape,
    policy_name: str,
    *,
    budget: int,
    seed: int,
    workers: int = 1,
    options: dict[str, Any] | None = None,
    rules: tuple[str, ...] = selection.RULES,
    checkpoints: list[int] | None = None,
    budget_expansions: int | None = None,
) -> RunResult:
    """Run one search in the simulated world and record the choice at each checkpoint.

    `budget_expansions` caps expansion attempts (ok + failed + in flight); None means the
    evaluation budget, as in `hgm run` (`budget.expansions`).
    """
    started = time.perf_counter()
    world = World(landscape, seed)
    policy = build_policy(landscape, policy_name, options)
    state = SearchState(world.task_ids)
    state.add_node(0, None)
    policy_rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    cap = budget if budget_expansions is None else budget_expansions
    scheduler = Scheduler(state, policy, budget_evals=budget, budget_expansions=cap, rng=policy_rng,
                          seed_evals=landscape.seed_evals)
    points = sorted(set(checkpoints or default_checkpoints(budget)))
    result = RunResult(policy_name, seed, budget, [], {r: [] for r in rules}, [], [])

    def record(label: int) -> None:
        view = state.view()
        truth = world.true_skills()
        result.checkpoints.append(label)
        for rule in rules:
            result.chosen_skill[rule].append(float(truth[selection.choose_node(view, rule)]))
        result.best_skill.append(float(truth[view.node_ids].max()))
        result.n_nodes.append(view.n_nodes)

    clock = 0.0
    heap: list[tuple[float, int, Job]] = []
    free = max(1, workers)
    next_point = 0
    while True:
        while free > 0:
            job = scheduler.dispatch()
            if job is None or isinstance(job, Wait):
                break
            kind = "eval" if job.is_eval else "expand"
            heapq.heappush(heap, (clock + world.duration(kind), job.id, job))
            free -= 1
        if not heap:
            break
        clock, _, job = heapq.heappop(heap)
        free += 1
        action = job.action
        if job.is_eval:
            scheduler.complete_eval(job, world.evaluate(action.node_id, action.task_id))
            while next_point < len(points) and state.evals_completed >= points[next_point]:
                record(points[next_point])
                next_point += 1
        else:
            child = world.expand(action.node_id)
            if child is None:
                scheduler.complete_expansion(job, None)
            else:
                scheduler.complete_expansion(job, child)
    # A search that ran out of work (every pair seen) ships the same agent at later points.
    for point in points[next_point:]:
        record(point)
    result.evals_used = state.evals_completed
    result.failed_expansions = state.expansions_failed
    result.virtual_time = clock
    result.compute_seconds = time.perf_counter() - started
    return result
