"""Confirmation on held-out tasks: the plan, the exact McNemar test, the scheduler's phase, resume,
and what `hgm best` / `hgm show` report from the archive."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from archive.records import EvalRecord, ExpansionRecord
from archive.run import Run
from hgm.cli import build_app
from hgm.evolve.expand import ExpansionOutcome
from hgm.loop.executor import Executor, ExecutorLimits
from hgm.loop.scheduler import Job, Scheduler, SchedulerError
from hgm.loop.session import build_state
from hgm.policies import Evaluate, Wait, make_policy
from hgm.search import confirm
from hgm.search.confirm import ConfirmPlan, mcnemar, plan_confirmation, search_first
from hgm.search.report import best_node, confirmation_status
from hgm.search.state import SearchState

TASKS = [f"t{i:02d}" for i in range(60)]


def test_plan_sizes_and_when_a_budget_allows_it() -> None:
    plan = plan_confirmation(TASKS, 400, share=0.1, top_k=3, min_tasks=5, seed=1)
    assert plan is not None and len(plan.holdout) == 8  # 40 evaluations over 3 candidates + root + parent
    assert plan.reserve == 40 and plan.search_budget == 360
    assert set(plan.holdout) <= set(TASKS) and len(set(plan.holdout)) == 8
    assert plan == plan_confirmation(TASKS, 400, share=0.1, top_k=3, min_tasks=5, seed=1)  # reproducible
    assert plan.holdout != plan_confirmation(TASKS, 400, share=0.1, top_k=3, min_tasks=5, seed=2).holdout
    assert plan_confirmation(TASKS, 150, share=0.1, top_k=3, min_tasks=5, seed=1) is None  # 3 tasks: too few
    big = plan_confirmation(TASKS, 5000, share=0.1, top_k=3, min_tasks=5, seed=1)
    assert big is not None and len(big.holdout) == 20  # never more than a third of the tasks
    assert plan_confirmation(TASKS[:12], 5000, share=0.1, top_k=3, min_tasks=5, seed=1) is None
    assert ConfirmPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
    order = search_first(TASKS, plan)
    assert order[-8:] == plan.holdout and sorted(order) == sorted(TASKS)


def test_exact_mcnemar() -> None:
    tasks = [f"h{i}" for i in range(10)]
    shipped = dict.fromkeys(tasks, 1)
    reference = {t: int(i >= 7) for i, t in enumerate(tasks)}  # 7 tasks only the shipped agent solves
    test = mcnemar(shipped, reference, tasks)
    assert (test["wins"], test["losses"]) == (7, 0)
    assert test["p_value"] == pytest.approx(2 / 2**7) and test["difference"] == pytest.approx(0.7)
    mixed = {t: int(i in (0, 1, 2, 9)) for i, t in enumerate(tasks)}
    other = {t: int(i in (3, 9)) for i, t in enumerate(tasks)}
    assert mcnemar(mixed, other, tasks)["p_value"] == pytest.approx(2 * (1 + 4) / 16)  # 3 wins vs 1 loss
    assert mcnemar(mixed, mixed, tasks)["p_value"] == 1.0


def test_winner_ties_go_to_the_search_order() -> None:
    holdout = {4: {"a": 1, "b": 0}, 2: {"a": 0, "b": 1}, 7: {"a": 1, "b": 1}}
    assert confirm.winner([4, 2, 7], holdout) == 7
    assert confirm.winner([4, 2], holdout) == 4


# ------------------------------------------------------------------ the scheduler's phase
class HiddenTasksGuard:
    """Wraps a policy and checks what it is shown: never a held-out task, the search's budget."""

    name = "guard"

    def __init__(self, inner: object, plan: ConfirmPlan) -> None:
        self.inner, self.plan, self.calls = inner, plan, 0

    def next_action(self, view, rng):  # noqa: ANN001, ANN201
        self.calls += 1
        assert not set(view.task_ids) & set(self.plan.holdout)
        assert view.seen.shape[1] == len(view.task_ids) == len(TASKS) - len(self.plan.holdout)
        assert view.budget_evals == self.plan.search_budget
        return self.inner.next_action(view, rng)


def _confirming(budget: int = 400, seed: int = 3) -> tuple[Scheduler, ConfirmPlan, HiddenTasksGuard]:
    plan = plan_confirmation(TASKS, budget, share=0.1, top_k=3, min_tasks=5, seed=seed)
    st = SearchState(search_first(TASKS, plan))
    st.add_node(0, None)
    guard = HiddenTasksGuard(make_policy("hgm"), plan)
    sched = Scheduler(st, guard, budget_evals=budget, budget_expansions=budget, rng=np.random.default_rng(seed),
                      seed_evals=3, confirmation=plan)
    return sched, plan, guard


def _skill(node: int) -> float:
    return min(0.9, 0.1 + 0.04 * node)  # later nodes are better


def _outcome(node: int, task: str) -> bool:
    return random.Random(f"{node}-{task}").random() < _skill(node)


def _drive(sched: Scheduler, max_jobs: int = 5000) -> list[Job]:
    jobs = []
    while len(jobs) < max_jobs:
        job = sched.dispatch()
        if job is None:
            return jobs
        assert isinstance(job, Job)
        jobs.append(job)
        if job.is_eval:
            sched.complete_eval(job, _outcome(job.action.node_id, job.action.task_id))
        else:
            sched.complete_expansion(job, sched.state.next_node_id())
    raise AssertionError("the search did not end")


def test_search_then_confirmation_within_the_budget() -> None:
    sched, plan, guard = _confirming()
    jobs = _drive(sched)
    held = set(plan.holdout)
    search = [j for j in jobs if j.is_eval and not j.holdout]
    confirming = [j for j in jobs if j.holdout]
    assert guard.calls > 0 and sched.finished and sched.budget_left == 0
    assert all(j.action.task_id not in held for j in search) and len(search) == plan.search_budget
    assert all(j.action.task_id in held for j in confirming)
    assert jobs.index(confirming[0]) > max(jobs.index(j) for j in search)  # held-out work only after the search
    phase = sched.confirmation
    cands = phase.candidates(sched.state)
    assert len(cands) == 3
    winner = phase.shipped(sched.state)
    assert winner in cands and phase.done(sched.state)
    measured = {j.action.node_id for j in confirming}
    parent = sched.state.parent_of(winner)
    assert measured == {*cands, 0, *([parent] if parent is not None else [])}
    for node in measured:  # every such node on every held-out task, once
        assert sorted(j.action.task_id for j in confirming if j.action.node_id == node) == sorted(plan.holdout)
    assert sched.state.evals_completed == plan.search_budget + len(confirming) <= 400
    scores = {c: sum(_outcome(c, t) for t in plan.holdout) for c in cands}
    assert scores[winner] == max(scores.values())


def test_confirmation_waits_for_the_searchs_evaluations() -> None:
    sched, plan, _ = _confirming(budget=400)
    last = None
    while last is None:  # finish every job at once, except the search's last evaluation
        job = sched.dispatch()
        if not job.is_eval:
            sched.complete_expansion(job, sched.state.next_node_id())
        elif sched.state.evals_used == plan.search_budget:
            last = job
        else:
            sched.complete_eval(job, _outcome(job.action.node_id, job.action.task_id))
    assert isinstance(sched.dispatch(), Wait) and not sched.confirming  # its result may change the candidates
    sched.complete_eval(last, True)
    first = sched.dispatch()
    assert isinstance(first, Job) and first.holdout and sched.confirming


def test_a_resumed_run_continues_the_confirmation_not_the_search() -> None:
    sched, plan, _ = _confirming()
    jobs = []
    while not any(j.holdout for j in jobs):
        job = sched.dispatch()
        jobs.append(job)
        if job.is_eval:
            sched.complete_eval(job, _outcome(job.action.node_id, job.action.task_id))
        else:
            sched.complete_expansion(job, sched.state.next_node_id())
    # a new session after the first held-out evaluation: the state as the archive would rebuild it, a fresh scheduler
    old = sched.state
    st = SearchState(old.task_ids)
    for node in old.node_ids:
        st.add_node(node, old.parent_of(node))
        for task, value in old.own_measures(node):
            st.record_eval(node, task, bool(value), in_flight=False)
    guard = HiddenTasksGuard(make_policy("hgm"), plan)
    again = Scheduler(st, guard, budget_evals=400, budget_expansions=400, rng=np.random.default_rng(9),
                      confirmation=plan)
    assert again.confirming
    rest = _drive(again)
    assert guard.calls == 0 and rest and all(j.holdout for j in rest)
    assert again.confirmation.candidates(st) == sched.confirmation.candidates(old)  # the search data decide, not the held-out
    assert again.confirmation.done(st)


def test_policy_cannot_ask_for_a_held_out_task() -> None:
    plan = plan_confirmation(TASKS, 400, share=0.1, top_k=3, min_tasks=5, seed=3)

    class Peeks:
        name = "peeks"

        def next_action(self, view, rng):  # noqa: ANN001, ANN201
            return Evaluate(0, plan.holdout[0])

    st = SearchState(search_first(TASKS, plan))
    st.add_node(0, None)
    with pytest.raises(SchedulerError, match="held-out"):
        Scheduler(st, Peeks(), budget_evals=400, confirmation=plan).dispatch()
    wrong_order = SearchState(tuple(TASKS))
    wrong_order.add_node(0, None)
    with pytest.raises(ValueError, match="held-out tasks last"):
        Scheduler(wrong_order, Peeks(), budget_evals=400, confirmation=plan)


# ------------------------------------------------------------------ through the executor and the archive
class Handler:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    def evaluate(self, job: Job) -> EvalRecord:
        a = job.action
        return EvalRecord(a.node_id, a.task_id, "resolved" if _outcome(a.node_id, a.task_id) else "unresolved")

    def expand(self, job: Job) -> ExpansionOutcome:
        child = self.tmp / f"child-{job.id}"
        (child / "agent").mkdir(parents=True)
        (child / "agent" / "__init__.py").write_text(f"VERSION = {job.id}\n")
        return ExpansionOutcome(ExpansionRecord(job.action.node_id, "ok"), child)

    def job_cost(self, job: Job) -> tuple[float, int]:
        return 0.0, 0

    def cancel_all(self) -> None:
        pass


def test_best_and_show_report_the_confirmed_pick(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    (seed / "agent").mkdir(parents=True)
    (seed / "agent" / "__init__.py").write_text("VERSION = 0\n")
    budget = 200
    plan = plan_confirmation(TASKS, budget, share=0.2, top_k=2, min_tasks=5, seed=4)
    run = Run.create(tmp_path / "run", {"policy": {"final_rule": "lineage"}}, seed)
    run.log_event(confirm.PLAN_EVENT, {"plan": plan.to_json()})
    state = build_state(run.tree(), list(search_first(TASKS, plan)), run.expansions(), run.evaluations())
    sched = Scheduler(state, make_policy("hgm"), budget_evals=budget, budget_expansions=budget,
                      rng=np.random.default_rng(4), confirmation=plan)
    assert confirmation_status(run)["status"] == "waiting"
    outcome = Executor(sched, Handler(tmp_path), run, ExecutorLimits(workers=3, tick_s=0.02)).run()
    assert outcome.stop_reason == "budget_evals" and sched.confirmation.done(state)
    best = best_node(run)
    assert best["chosen_by"] == "confirmation" and best["node"] == sched.confirmation.shipped(state)
    status = best["confirmation"]
    assert status["status"] == "done" and [c["node"] for c in status["candidates"]] == sched.confirmation.candidates(state)
    assert all(c["holdout_evals"] == len(plan.holdout) for c in status["candidates"])
    assert status["vs_root"]["node"] == 0 and 0 <= status["vs_root"]["p_value"] <= 1
    run.close()
    cli = CliRunner()
    shown = cli.invoke(build_app(), ["best", str(tmp_path / "run"), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["node"] == best["node"]
    text = cli.invoke(build_app(), ["best", str(tmp_path / "run")]).stdout
    assert f"chosen by confirmation on {len(plan.holdout)} held-out tasks" in text and "McNemar" in text
    show = cli.invoke(build_app(), ["show", str(tmp_path / "run")])
    assert show.exit_code == 0 and "confirmed on held-out tasks" in " ".join(show.stdout.split())
    assert json.loads(cli.invoke(build_app(), ["show", str(tmp_path / "run"), "--json"]).stdout)["best"]["chosen_by"] == "confirmation"
