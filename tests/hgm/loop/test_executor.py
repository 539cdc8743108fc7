"""Executor: budgets, concurrency, Ctrl-C once/twice, abandon, infra errors, resume, failed expansions.

A fake job runner stands in for sandboxes; the archive is real (SQLite + git in tmp).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from archive.records import EvalRecord, ExpansionRecord
from archive.run import Run
from hgm.loop.executor import Executor, ExecutorLimits, ExpansionOutcome
from hgm.loop.session import build_state
from hgm.loop.scheduler import Job, Scheduler
from hgm.policies import make_policy

TASKS = [f"t{i}" for i in range(40)]


def new_run(tmp_path: Path) -> Run:
    seed = tmp_path / "seed"
    (seed / "agent").mkdir(parents=True)
    (seed / "agent" / "__init__.py").write_text("VERSION = 0\n")
    return Run.create(tmp_path / "run", {"test": True}, seed)


class FakeRunner:
    """Deterministic outcomes; optional gate that holds jobs until released."""

    def __init__(self, tmp_path: Path, *, expand_ok: bool = True, infra: bool = False,
                 gate: threading.Event | None = None, cost_per_job: float = 0.0, delay: float = 0.0) -> None:
        self.delay = delay
        self.tmp = tmp_path
        self.expand_ok = expand_ok
        self.infra = infra
        self.gate = gate
        self.cost_per_job = cost_per_job
        self.cancelled = 0
        self.started: list[Job] = []
        self.lock = threading.Lock()
        self.spent = 0.0

    def _wait(self) -> None:
        with self.lock:
            self.spent += self.cost_per_job
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.delay)

    def evaluate(self, job: Job) -> EvalRecord:
        self.started.append(job)
        self._wait()
        a = job.action
        if self.infra:
            return EvalRecord(a.node_id, a.task_id, "error_infra", detail="docker broke")
        status = "resolved" if (hash((a.node_id, a.task_id)) % 3 == 0) else "unresolved"
        return EvalRecord(a.node_id, a.task_id, status, cost_usd=self.cost_per_job)

    def expand(self, job: Job) -> ExpansionOutcome:
        self.started.append(job)
        self._wait()
        parent = job.action.node_id
        if not self.expand_ok:
            return ExpansionOutcome(ExpansionRecord(parent, "failed", reason="tests fail", cost_usd=0.01))
        child = self.tmp / f"child-{job.id}"
        (child / "agent").mkdir(parents=True)
        (child / "agent" / "__init__.py").write_text(f"VERSION = {job.id}\n")
        return ExpansionOutcome(ExpansionRecord(parent, "ok", lesson="failed_task:t1"), child)

    def job_cost(self, job: Job) -> tuple[float, int]:
        return 0.0, 0

    def cancel_all(self) -> None:
        self.cancelled += 1
        if self.gate is not None:
            self.gate.set()


def make_scheduler(run: Run, budget: int, policy: str = "hgm", seed: int = 0) -> Scheduler:
    """As the real loop builds it: the bare policy, expansion attempts capped at the eval budget."""
    state = build_state(run.tree(), TASKS, run.expansions(), run.evaluations())
    pol = make_policy(policy, {"task_order_seed": seed} if policy != "dgm" else {})
    return Scheduler(state, pol, budget_evals=budget, budget_expansions=budget, rng=np.random.default_rng(seed))


def executor(run: Run, sched: Scheduler, runner: FakeRunner, **limits: object) -> Executor:
    return Executor(sched, runner, run, ExecutorLimits(**{"workers": 3, "tick_s": 0.02, **limits}),
                    spent=lambda: (runner.spent, 0))


def measured(run: Run) -> list[tuple[int, str]]:
    return [(r["node_id"], r["task_id"]) for r in run.evaluations() if r["utility"] is not None]


@pytest.mark.parametrize("policy", ["hgm", "dgm", "greedy", "uniform"])
def test_spends_exactly_the_eval_budget_without_duplicates(tmp_path: Path, policy: str) -> None:
    run = new_run(tmp_path)
    ex = executor(run, make_scheduler(run, 20, policy), FakeRunner(tmp_path))
    outcome = ex.run()
    pairs = measured(run)
    assert outcome.stop_reason == "budget_evals"
    assert len(pairs) == 20 and len(set(pairs)) == 20
    assert len(run.tree()) >= 2  # expansions happened and children were committed
    assert ex.progress().evals_done == 20
    run.close()


def test_failed_expansions_do_not_starve_the_budget(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    ex = executor(run, make_scheduler(run, 15), FakeRunner(tmp_path, expand_ok=False))
    outcome = ex.run()
    assert outcome.stop_reason == "budget_evals"
    assert len(measured(run)) == 15
    failed = [e for e in run.expansions() if e["status"] == "failed"]
    assert failed and all(e["reason"] == "tests fail" and e["cost_usd"] == pytest.approx(0.01) for e in failed)
    assert len(failed) <= 15 ** 0.6 + 3  # bounded by the expand rule (plus in-flight slack)
    run.close()


def test_failed_expansions_on_resume_still_count(tmp_path: Path) -> None:
    """Failed expansions rebuilt from the archive keep counting: a resumed run does not
    restart expanding from zero attempts."""
    run = new_run(tmp_path)
    runner = FakeRunner(tmp_path, expand_ok=False)
    executor(run, make_scheduler(run, 8), runner, workers=1).run()
    failed_first = sum(1 for e in run.expansions() if e["status"] == "failed")
    sched = make_scheduler(run, 15)
    assert sched.view().expansions_failed == failed_first >= 1
    executor(run, sched, runner, workers=1).run()
    failed = sum(1 for e in run.expansions() if e["status"] == "failed")
    assert len(measured(run)) == 15 and failed <= 15 ** 0.6 + 1
    run.close()


def test_ctrl_c_once_waits_for_work_in_flight(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    gate = threading.Event()
    runner = FakeRunner(tmp_path, gate=gate)
    ex = executor(run, make_scheduler(run, 30), runner, grace_period_s=10)
    result: list = []
    t = threading.Thread(target=lambda: result.append(ex.run()))
    t.start()
    while len(runner.started) < 3:
        time.sleep(0.01)
    ex.interrupt()
    time.sleep(0.2)
    assert len(runner.started) == 3  # nothing new started after Ctrl-C
    gate.set()
    t.join(10)
    outcome = result[0]
    assert outcome.stop_reason == "interrupted" and outcome.abandoned == 0
    assert sum(1 for r in run.evaluations() if r["status"] != "abandoned") + len(run.expansions()) == 3
    assert runner.cancelled == 0
    run.close()


def test_ctrl_c_twice_abandons_now_and_frees_the_pairs(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    gate = threading.Event()
    runner = FakeRunner(tmp_path, gate=gate)
    sched = make_scheduler(run, 30)
    ex = executor(run, sched, runner, grace_period_s=60)
    result: list = []
    t = threading.Thread(target=lambda: result.append(ex.run()))
    t.start()
    while len(runner.started) < 3:
        time.sleep(0.01)
    ex.interrupt()
    ex.interrupt()
    t.join(10)
    outcome = result[0]
    assert outcome.stop_reason == "interrupted" and outcome.abandoned == 3
    assert runner.cancelled == 1
    rows = run.evaluations()
    assert all(r["status"] == "abandoned" and r["utility"] is None for r in rows)
    assert sched.state.evals_in_flight == 0 and sched.state.expansions_in_flight == 0
    assert not sched.in_flight()
    # late results of the abandoned jobs are discarded, never recorded as measurements
    time.sleep(0.2)
    assert measured(run) == []
    run.close()


def test_grace_period_expiry_abandons(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    runner = FakeRunner(tmp_path, gate=threading.Event())
    ex = executor(run, make_scheduler(run, 30), runner, grace_period_s=0.3)
    result: list = []
    t = threading.Thread(target=lambda: result.append(ex.run()))
    t.start()
    while len(runner.started) < 3:
        time.sleep(0.01)
    ex.interrupt()
    t.join(10)
    assert result[0].abandoned == 3 and runner.cancelled == 1
    run.close()


def test_infra_errors_are_recorded_unmeasured_and_stop_the_run(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    sched = make_scheduler(run, 10)
    ex = executor(run, sched, FakeRunner(tmp_path, infra=True), max_infra_streak=4, workers=1)
    outcome = ex.run()
    assert outcome.stop_reason == "infra_errors"
    rows = run.evaluations()
    assert len(rows) == 4 and all(r["status"] == "error_infra" for r in rows)
    assert sched.state.evals_completed == 0  # nothing charged to the budget
    run.close()


def test_dollar_budget_stops_the_run(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    runner = FakeRunner(tmp_path, cost_per_job=0.25)
    ex = executor(run, make_scheduler(run, 100), runner, budget_usd=1.0, workers=1)
    outcome = ex.run()
    assert outcome.stop_reason == "budget_usd"
    assert 3 <= len(run.evaluations()) + len(run.expansions()) <= 5
    run.close()


def test_runner_crash_is_an_infra_error_or_failed_expansion(tmp_path: Path) -> None:
    class Buggy(FakeRunner):
        def evaluate(self, job):
            raise KeyError("oops")

        def expand(self, job):
            raise RuntimeError("bad")

    run = new_run(tmp_path)
    ex = executor(run, make_scheduler(run, 5), Buggy(tmp_path), max_infra_streak=3, workers=1)
    outcome = ex.run()
    assert outcome.stop_reason == "infra_errors"
    assert all("internal error: KeyError" in r["detail"] for r in run.evaluations())
    assert outcome.errors
    run.close()


def test_resume_continues_to_exactly_the_budget(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    runner = FakeRunner(tmp_path, delay=0.05)
    ex = executor(run, make_scheduler(run, 24), runner, wall_clock_s=10)
    # stop after a few evaluations by interrupting from a tick
    ticks = []

    def tick(progress):
        ticks.append(progress)
        if progress.evals_done >= 8:
            ex.interrupt()

    ex.on_tick = tick
    ex.run()
    first = measured(run)
    assert 8 <= len(first) < 24
    run.close()
    run = Run.open(tmp_path / "run", writable=True)
    sched = make_scheduler(run, 24, seed=1)
    assert sched.state.evals_completed == len(first)
    executor(run, sched, FakeRunner(tmp_path)).run()
    pairs = measured(run)
    assert len(pairs) == 24 and len(set(pairs)) == 24
    assert set(first) <= set(pairs)
    run.close()


def test_budgets_spent_by_earlier_sessions_start_nothing(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    runner = FakeRunner(tmp_path)
    assert executor(run, make_scheduler(run, 10), runner, wall_clock_s=0.0).run().stop_reason == "wall_clock"
    runner.spent = 5.0
    assert executor(run, make_scheduler(run, 10), runner, budget_usd=1.0).run().stop_reason == "budget_usd"
    assert runner.started == [] and run.evaluations() == []
    run.close()


class FollowUpRunner(FakeRunner):
    """A handler with a follow-up on recorded results; the first one crashes."""

    def __init__(self, tmp_path: Path, run: Run) -> None:
        super().__init__(tmp_path)
        self.run = run
        self.followed: list[tuple[str, bool]] = []

    def after_record(self, job: Job, result: object) -> None:
        kind = "eval" if isinstance(result, EvalRecord) else "expand"
        recorded = (job.action.node_id, job.action.task_id) in self.run.evaluated_pairs() if kind == "eval" \
            else bool(self.run.expansions())
        self.followed.append((kind, recorded))
        if len(self.followed) == 1:
            raise RuntimeError("the model is down")


def test_the_handlers_follow_up_sees_each_result_recorded_and_cannot_stop_the_run(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    runner = FollowUpRunner(tmp_path, run)
    ex = executor(run, make_scheduler(run, 10), runner)
    outcome = ex.run()
    assert outcome.stop_reason == "budget_evals" and len(measured(run)) == 10
    kinds = [k for k, _ in runner.followed]
    assert kinds.count("eval") == 10 and kinds.count("expand") == len(run.expansions()) >= 1
    assert all(recorded for _, recorded in runner.followed)  # only ever after the archive has it
    assert any("follow-up" in e and "the model is down" in e for e in outcome.errors)
    run.close()
