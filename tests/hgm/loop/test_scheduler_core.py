"""Scheduler core: budget reserved at dispatch, no duplicate pairs, pending work, failures."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest

from hgm.loop.scheduler import Job, Scheduler, SchedulerError
from hgm.search.state import SearchState
from hgm.policies import Evaluate, Expand, Wait, make_policy

TASKS = tuple(f"t{i}" for i in range(30))


def _scheduler(budget: int, policy: str = "hgm", seed_evals: int = 0, **kw: object) -> Scheduler:
    st = SearchState(TASKS)
    st.add_node(0, None)
    return Scheduler(st, make_policy(policy), budget_evals=budget, rng=np.random.default_rng(0), seed_evals=seed_evals, **kw)


@pytest.mark.parametrize("policy", ["hgm", "dgm", "greedy", "uniform"])
def test_threads_hammering_dispatch_never_overshoot_the_budget(policy: str) -> None:
    budget = 150
    sched = _scheduler(budget, policy)
    dispatched: list[Job] = []
    peak = [0]
    ids = iter(range(1, 10**6))
    id_lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(wid: int) -> None:
        rnd = random.Random(wid)
        try:
            while True:
                job = sched.next_job(0.5) if wid % 2 else sched.dispatch()
                if job is None:
                    return
                if isinstance(job, Wait):
                    sched.wait_for_change(0.01)
                    continue
                with sched._lock:  # observe the invariant at its strictest point
                    peak[0] = max(peak[0], sched.state.evals_used)
                dispatched.append(job)
                if job.is_eval:
                    sched.complete_eval(job, rnd.random() < 0.4)
                elif rnd.random() < 0.2:
                    sched.complete_expansion(job, None, cost=0.5)
                else:
                    with id_lock:
                        child = next(ids)
                    sched.complete_expansion(job, child, cost=1.0)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    evals = [j.action for j in dispatched if j.is_eval]
    assert len(evals) == budget
    assert peak[0] <= budget
    assert sched.state.evals_completed == budget
    assert len({(a.node_id, a.task_id) for a in evals}) == len(evals)  # no pair twice
    assert sched.finished and sched.dispatch() is None


def test_budget_is_reserved_at_dispatch() -> None:
    sched = _scheduler(3, "uniform")
    jobs = []
    while True:
        job = sched.dispatch()
        if not isinstance(job, Job):
            break
        jobs.append(job)
        if not job.is_eval:
            sched.complete_expansion(job, sched.state.next_node_id())
    evals = [j for j in jobs if j.is_eval]
    assert len(evals) == 3 and sched.state.evals_in_flight == 3
    assert sched.dispatch() is None  # nothing finished yet, but nothing more is handed out
    assert not sched.finished
    for j in evals:
        sched.complete_eval(j, True)
    assert sched.finished


def test_failed_expansion_is_counted_with_its_cost() -> None:
    sched = _scheduler(10, seed_evals=1)
    job = sched.dispatch()
    sched.complete_eval(job, True)
    job = sched.dispatch()
    assert isinstance(job.action, Expand)
    sched.complete_expansion(job, None, cost=0.42)
    assert sched.state.expansions_failed == 1 and sched.view().expansions_failed == 1
    assert sched.state.n_nodes == 1 and sched.state.expansions_in_flight == 0
    assert sched.state.expansion_cost == pytest.approx(0.42)


def test_pending_expansions_are_visible_to_the_policy() -> None:
    sched = _scheduler(50, seed_evals=1)
    sched.complete_eval(sched.dispatch(), True)  # 1 eval: 1**0.6 = 1
    first, second, third = sched.dispatch(), sched.dispatch(), sched.dispatch()
    assert isinstance(first.action, Expand) and isinstance(second.action, Expand)
    assert isinstance(third.action, Evaluate)  # 1 < 0 nodes + 2 in flight
    assert sched.view().expansions_in_flight == 2


def test_seed_evaluations_come_first_and_in_order() -> None:
    calls = []

    class Recording:
        name = "rec"

        def next_action(self, view, rng):  # noqa: ANN001, ANN201
            calls.append(view.evals_completed)
            return Wait()

    st = SearchState(TASKS)
    st.add_node(0, None)
    sched = Scheduler(st, Recording(), budget_evals=10, seed_evals=3, task_order_seed=4)
    jobs = [sched.dispatch() for _ in range(3)]
    assert all(j.seed and j.action.node_id == 0 for j in jobs)
    order = np.random.default_rng(4).permutation(len(TASKS))
    assert [j.action.task_id for j in jobs] == [TASKS[i] for i in order[:3]]
    assert isinstance(sched.dispatch(), Wait) and calls == []  # policy not asked before seeds finish
    for j in jobs:
        sched.complete_eval(j, False)
    assert sched.dispatch() is None  # the policy waits and nothing is in flight: over
    assert calls == [3]


def test_abandon_frees_budget_and_pair() -> None:
    sched = _scheduler(1, "uniform")
    job = sched.dispatch()
    assert job.is_eval and sched.dispatch() is None
    sched.abandon(job)
    assert not sched.state.is_seen(0, job.action.task_id)
    assert sched.budget_left == 1
    again = sched.dispatch()
    assert isinstance(again, Job) and again.is_eval


def test_completion_must_match_a_job_in_flight() -> None:
    sched = _scheduler(5, "uniform")
    job = sched.dispatch()
    sched.complete_eval(job, True)
    with pytest.raises(SchedulerError, match="not in flight"):
        sched.complete_eval(job, True)
    with pytest.raises(SchedulerError, match="not in flight"):
        sched.abandon(Job(999, Evaluate(0, "t1")))
    exp = sched.dispatch()
    assert isinstance(exp.action, Expand)
    with pytest.raises(SchedulerError, match="not what was reported"):
        sched.complete_eval(exp, True)
    with pytest.raises(SchedulerError, match="already exists"):
        sched.complete_expansion(exp, 0)
    sched.complete_expansion(exp, 1)  # still completable after the refused report


def test_policy_proposing_a_seen_pair_is_refused() -> None:
    class Repeats:
        name = "repeats"

        def next_action(self, view, rng):  # noqa: ANN001, ANN201
            return Evaluate(0, "t0")

    st = SearchState(TASKS)
    st.add_node(0, None)
    sched = Scheduler(st, Repeats(), budget_evals=5)
    sched.dispatch()
    with pytest.raises(SchedulerError, match="twice"):
        sched.dispatch()


def test_stop_ends_dispatch_but_accepts_completions() -> None:
    sched = _scheduler(10, "uniform")
    job = sched.dispatch()
    sched.stop()
    assert sched.dispatch() is None
    sched.complete_eval(job, True)
    assert sched.finished


def test_next_job_blocks_until_a_completion_frees_work() -> None:
    sched = _scheduler(5, seed_evals=2)
    first, second = sched.dispatch(), sched.dispatch()
    assert isinstance(sched.dispatch(), Wait)  # seeds in flight: the policy must wait
    assert isinstance(sched.next_job(timeout=0.05), Wait)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(sched.next_job(timeout=10)))
    waiter.start()
    sched.complete_eval(first, True)
    sched.complete_eval(second, False)
    waiter.join(10)
    assert got and isinstance(got[0], Job)


# ----------------------------------------------------------- failed expansions and expansion budget
def _drive(sched: Scheduler, *, expand_ok: float, max_jobs: int = 2000, seed: int = 0) -> list[Job]:
    """Run the search synchronously (one worker); expansions succeed with probability `expand_ok`."""
    rnd = random.Random(seed)
    jobs: list[Job] = []
    while len(jobs) < max_jobs:
        job = sched.dispatch()
        if job is None:
            break
        assert isinstance(job, Job)  # one worker: nothing in flight, so never Wait
        jobs.append(job)
        if job.is_eval:
            sched.complete_eval(job, rnd.random() < 0.3)
        elif rnd.random() < expand_ok:
            sched.complete_expansion(job, sched.state.next_node_id())
        else:
            sched.complete_expansion(job, None)
    return jobs


@pytest.mark.parametrize("policy", ["hgm", "greedy", "uniform"])
def test_all_failing_expansions_still_spend_the_eval_budget_and_end(policy: str) -> None:
    """The never-ending run: a weak model whose expansions all fail must not expand forever."""
    # No expansion cap: the expand rule alone (budget < tasks, so the seed always has work).
    sched = _scheduler(25, policy, seed_evals=2)
    jobs = _drive(sched, expand_ok=0.0)
    assert sched.finished and sched.dispatch() is None
    assert sched.state.evals_completed == 25
    failed = sum(1 for j in jobs if not j.is_eval)
    assert 1 <= failed <= 25 ** 0.6 + 1 and failed == sched.state.expansions_failed


@pytest.mark.parametrize("policy", ["hgm", "greedy", "uniform"])
def test_all_failing_expansions_end_the_run_in_a_bounded_number_of_attempts(policy: str) -> None:
    """The stopping property of the (default) allowance, with no expansion cap at all: once
    the seed has seen every task only expansions are left, and a model whose expansions all
    fail is allowed about n_evals ** alpha of them in all; then the search is over."""
    sched = _scheduler(1000, policy, seed_evals=2, budget_expansions=None)
    assert sched.policy.config.failed_expansions == "allowance"
    jobs = _drive(sched, expand_ok=0.0)
    assert sched.finished and sched.dispatch() is None
    failed = sum(1 for j in jobs if not j.is_eval)
    assert sched.state.evals_completed == len(TASKS)
    assert 1 <= failed <= len(TASKS) ** 0.6 + 1 and failed == sched.state.expansions_failed


def test_dgm_with_all_failing_expansions_ends_at_the_expansion_cap() -> None:
    """DGM has no brake of its own: the cap (the real loop uses the eval budget by default) ends it."""
    sched = _scheduler(60, "dgm", seed_evals=2, budget_expansions=60)
    jobs = _drive(sched, expand_ok=0.0)
    assert sched.finished and sched.dispatch() is None
    assert sched.state.evals_completed == len(TASKS) and sum(1 for j in jobs if not j.is_eval) == 60


def test_ignoring_failed_expansions_expands_forever() -> None:
    """Pins why failed expansions need a brake: without one (and without a cap) the run never ends."""
    st = SearchState(TASKS)
    st.add_node(0, None)
    sched = Scheduler(st, make_policy("hgm", {"failed_expansions": "ignore"}), budget_evals=60,
                      rng=np.random.default_rng(0), seed_evals=2)
    jobs = _drive(sched, expand_ok=0.0, max_jobs=500)
    assert len(jobs) == 500 and sched.state.evals_completed == 2 and not sched.finished
    assert sched.dispatch() is not None


def test_the_allowance_lets_occasional_failures_cost_no_growth() -> None:
    """With 40 % of the expansions failing, the allowance grows as many children as a world
    without failures (n_evals ** alpha); counting failures as children grows about 60 % of them."""
    tasks = tuple(f"t{i}" for i in range(400))

    def children(rule: str, expand_ok: float) -> int:
        st = SearchState(tasks)
        st.add_node(0, None)
        sched = Scheduler(st, make_policy("uniform", {"failed_expansions": rule}), budget_evals=300,
                          rng=np.random.default_rng(1), seed_evals=2)
        _drive(sched, expand_ok=expand_ok, seed=3)
        assert st.evals_completed == 300
        return st.n_nodes - 1

    ideal = children("allowance", 1.0)
    assert abs(ideal - 300 ** 0.6) <= 1
    assert children("allowance", 0.6) >= ideal - 1
    assert children("count", 0.6) <= 0.75 * ideal


@pytest.mark.parametrize("policy", ["hgm", "dgm", "greedy", "uniform"])
@pytest.mark.parametrize("expand_ok", [0.0, 0.7])
def test_expansion_budget_caps_attempts_and_the_eval_budget_is_still_spent(policy: str, expand_ok: float) -> None:
    cap = 3
    st = SearchState(TASKS)
    st.add_node(0, None)
    options = {"first_batch": 3, "full_batch": 5} if policy == "dgm" else {}
    sched = Scheduler(st, make_policy(policy, options), budget_evals=25, budget_expansions=cap,
                      rng=np.random.default_rng(0), seed_evals=2)
    jobs = _drive(sched, expand_ok=expand_ok)
    attempts = sum(1 for j in jobs if not j.is_eval)
    assert attempts == cap  # every policy wants more than 3 in 25 evaluations
    assert sched.state.evals_completed == 25 and sched.finished
    view = sched.view()
    assert view.expansion_attempts == cap and view.expansions_left() == 0 and not view.can_expand


@pytest.mark.parametrize("policy", ["hgm", "dgm", "greedy", "uniform"])
def test_search_ends_when_nothing_is_evaluable_and_no_expansion_is_allowed(policy: str) -> None:
    st = SearchState(("a", "b"))
    st.add_node(0, None)
    sched = Scheduler(st, make_policy(policy, {"first_batch": 1, "full_batch": 1} if policy == "dgm" else {}),
                      budget_evals=100, budget_expansions=2, rng=np.random.default_rng(0), seed_evals=1)
    jobs = _drive(sched, expand_ok=0.0)
    assert sum(1 for j in jobs if not j.is_eval) == 2
    assert st.evals_completed == 2  # both tasks on the only node; the eval budget cannot be spent
    assert sched.finished and sched.dispatch() is None


def test_expand_beyond_the_expansion_budget_is_refused() -> None:
    class AlwaysExpands:
        name = "always-expands"

        def next_action(self, view, rng):  # noqa: ANN001, ANN201
            return Expand(0)

    st = SearchState(TASKS)
    st.add_node(0, None)
    sched = Scheduler(st, AlwaysExpands(), budget_evals=5, budget_expansions=1)
    sched.complete_expansion(sched.dispatch(), None)
    with pytest.raises(SchedulerError, match="expansion budget"):
        sched.dispatch()
    with pytest.raises(ValueError, match="budget_expansions"):
        Scheduler(st, AlwaysExpands(), budget_evals=5, budget_expansions=-1)
