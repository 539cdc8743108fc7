"""Virtual-time executor: N simulated workers drive the real `Scheduler` and policy.

This is the simulator's counterpart of the real loop's executor: it calls
`Scheduler.dispatch / complete_eval / complete_expansion` exactly as worker threads do,
but runs each job to completion on a virtual clock (an event heap) with the world's
durations and outcomes, so 1 vs 16 workers can be compared without threads.

Policies, their options and the confirmation step are built from a `PolicyConfig` by the
same functions `hgm run` uses (`options_for(name, seed)`, `hgm.search.confirm.plan_for`),
with the simulation's seed in the place of the run's seed.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hgm.config import PolicyConfig
from hgm.loop.scheduler import Job, Scheduler
from hgm.policies import make_policy
from hgm.search import selection
from hgm.search.actions import Policy, Wait
from hgm.search.confirm import plan_for, search_first
from hgm.search.state import SearchState
from hgm.sim.landscape import Landscape
from hgm.sim.world import World


@dataclass
class RunResult:
    """One simulated run. Lists are aligned with `checkpoints` (evaluations finished)."""

    policy: str
    seed: int
    budget: int
    checkpoints: list[int]
    chosen_skill: dict[str, list[float]]  # per final-choice rule, on the state at each checkpoint
    best_skill: list[float]  # best true skill anywhere in the tree
    n_nodes: list[int]
    shipped: float = float("nan")  # true skill of what the run ships (the confirmation's pick, else the rule's)
    confirmed: bool = False  # whether a confirmation on held-out tasks chose the shipped agent
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


def build_policy(name: str, settings: PolicyConfig, seed: int) -> Policy:
    """The policy `name` as `hgm run` builds it from the same settings and seed."""
    return make_policy(name, settings.options_for(name, seed), ignore_unknown=True)


def simulate_run(
    landscape: Landscape,
    policy_name: str,
    *,
    budget: int,
    seed: int,
    workers: int = 1,
    settings: PolicyConfig | None = None,
    rules: tuple[str, ...] = selection.RULES,
    checkpoints: list[int] | None = None,
    budget_expansions: int | None = None,
) -> RunResult:
    """Run one search in the simulated world and record the choice at each checkpoint.

    `settings` are the run's policy settings (default: `hgm run`'s defaults).
    `budget_expansions` caps expansion attempts (ok + failed + in flight); None means the
    evaluation budget, as in `hgm run` (`budget.expansions`).
    """
    started = time.perf_counter()
    settings = settings or PolicyConfig()
    world = World(landscape, seed)
    policy = build_policy(policy_name, settings, seed)
    plan = plan_for(settings, world.task_ids, budget, seed)
    state = SearchState(search_first(world.task_ids, plan))
    state.add_node(0, None)
    policy_rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    cap = budget if budget_expansions is None else budget_expansions
    scheduler = Scheduler(state, policy, budget_evals=budget, budget_expansions=cap, rng=policy_rng,
                          seed_evals=landscape.seed_evals, task_order_seed=seed, confirmation=plan)
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
    attempts: dict[int, int] = {}
    free = max(1, workers)
    next_point = 0
    while True:
        while free > 0:
            job = scheduler.dispatch()
            if job is None or isinstance(job, Wait):
                break
            action = job.action
            if job.is_eval:
                duration = world.eval_duration(action.node_id, action.task_id)
            else:
                attempts[job.id] = world.reserve_attempt(action.node_id)
                duration = world.expansion_duration(action.node_id, attempts[job.id])
            heapq.heappush(heap, (clock + duration, job.id, job))
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
            scheduler.complete_expansion(job, world.expand(action.node_id, attempts.pop(job.id)))
    # A search that ran out of work (every pair seen) ships the same agent at later points.
    for point in points[next_point:]:
        record(point)
    truth = world.true_skills()
    confirmation = scheduler.confirmation
    shipped = confirmation.shipped(state) if confirmation is not None else None
    if shipped is not None:
        result.confirmed = True
        result.extra["search_pick"] = float(truth[confirmation.candidates(state)[0]])
    else:
        shipped = selection.choose_node(state.view(), settings.final_rule, quantile=settings.final_quantile)
    result.shipped = float(truth[shipped])
    result.evals_used = state.evals_completed
    result.failed_expansions = state.expansions_failed
    result.virtual_time = clock
    result.compute_seconds = time.perf_counter() - started
    return result
