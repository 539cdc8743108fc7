"""Executor faults: a full disk, the wall-clock deadline, a sandbox engine that goes away,
the run's dollar budget refusing a call, and no worker thread ever dying.

The fake runner of `test_executor` stands in for sandboxes; the archive is real.
"""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path

import pytest

from archive.errors import DiskFull
from archive.records import EvalRecord
from hgm.gateway.records import RUN_BUDGET_SPENT
from hgm.loop.executor import Executor, ExecutorLimits
from tests.hgm.loop.test_executor import FakeRunner, make_scheduler, measured, new_run


def run_executor(run, sched, runner, **limits) -> tuple[Executor, object]:
    ex = Executor(sched, runner, run, ExecutorLimits(**{"workers": 3, "tick_s": 0.02, **limits}),
                  spent=lambda: (runner.spent, 0))
    return ex, ex.run()


class FullDiskRunner(FakeRunner):
    """Evaluations write their artifacts; after `ok` of them the disk is full."""

    def __init__(self, tmp_path: Path, ok: int, **kw) -> None:
        super().__init__(tmp_path, **kw)
        self.ok = ok
        self.count = 0

    def evaluate(self, job):
        with self.lock:
            self.count += 1
            full = self.count > self.ok
        if full:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.tmp / "run" / "evals" / "patch.diff"))
        return super().evaluate(job)


def test_a_full_disk_stops_the_run_with_one_message_and_scores_nothing_broken(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    sched = make_scheduler(run, 30)
    ex, outcome = run_executor(run, sched, FullDiskRunner(tmp_path, ok=5, delay=0.01), grace_period_s=30)
    assert outcome.stop_reason == "disk_full"
    message = outcome.errors[0]
    assert "is full" in message and str(tmp_path / "run") in message and "free at least" in message
    assert "hgm resume" in message and "\n" not in message
    rows = run.evaluations()
    assert all(r["status"] != "error_infra" for r in rows)  # the failed jobs were freed, not recorded
    assert len(measured(run)) == len({(r["node_id"], r["task_id"]) for r in rows if r["utility"] is not None})
    assert sched.state.evals_in_flight == 0 and not sched.in_flight()
    assert outcome.elapsed_s < 10  # no waiting for a grace period: nothing more can be recorded
    run.close()


def test_the_archive_refusing_a_write_for_a_full_disk_stops_the_run(tmp_path: Path, monkeypatch) -> None:
    run = new_run(tmp_path)
    real = run.record_eval
    calls = []

    def record_eval(record):
        calls.append(record)
        if len(calls) > 3:
            raise DiskFull(f"the disk holding {run.path} is full (0 B free); free at least 50.0 MB there")
        return real(record)

    monkeypatch.setattr(run, "record_eval", record_eval)
    sched = make_scheduler(run, 30)
    _, outcome = run_executor(run, sched, FakeRunner(tmp_path), workers=2)
    assert outcome.stop_reason == "disk_full" and "is full" in outcome.errors[0]
    assert len(measured(run)) == 3 and sched.state.evals_completed == 3  # what failed to be written is free again
    run.close()


def test_too_little_free_space_starts_nothing(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    runner = FakeRunner(tmp_path)
    _, outcome = run_executor(run, make_scheduler(run, 10), runner, min_free_bytes=10**18)
    assert outcome.stop_reason == "disk_full" and runner.started == []
    assert "free at least 1000000.0 TB" in outcome.errors[0]
    run.close()


def test_the_wall_clock_deadline_abandons_work_instead_of_a_grace_period(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    runner = FakeRunner(tmp_path, delay=0.4)
    sched = make_scheduler(run, 200)
    t0 = time.monotonic()
    ex, outcome = run_executor(run, sched, runner, wall_clock_s=1.5, grace_period_s=60, workers=2)
    took = time.monotonic() - t0
    assert outcome.stop_reason == "wall_clock"
    assert took < 1.5 + 1.0  # the deadline holds: no 60 s grace period
    assert ex.typical_job_s() == pytest.approx(0.4, abs=0.2)
    assert sched.state.evals_in_flight == 0 and not sched.in_flight()
    run.close()


def test_no_job_starts_when_less_time_is_left_than_a_typical_job(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    runner = FakeRunner(tmp_path, delay=0.5)
    sched = make_scheduler(run, 200)
    ex, outcome = run_executor(run, sched, runner, wall_clock_s=1.2, workers=1)
    # one worker: jobs end at ~0.5 and ~1.0 s; at 1.0 s only 0.2 s are left (< 0.5 s): stop starting
    assert outcome.stop_reason == "wall_clock" and outcome.abandoned == 0
    assert len(runner.started) == 2
    run.close()


class EngineRunner(FakeRunner):
    """The sandbox engine goes away after `healthy` jobs and comes back after `down_s` (None: never)."""

    def __init__(self, tmp_path: Path, healthy: int, down_s: float | None, **kw) -> None:
        super().__init__(tmp_path, **kw)
        self.healthy = healthy
        self.down_s = down_s
        self.down_at: float | None = None
        self.count = 0
        self.probes = 0

    def _down(self) -> bool:
        if self.down_at is None:
            return False
        return self.down_s is None or time.monotonic() - self.down_at < self.down_s

    def evaluate(self, job):
        with self.lock:
            self.count += 1
            if self.count > self.healthy and self.down_at is None:
                self.down_at = time.monotonic()
            down = self._down()
        if down:
            time.sleep(0.02)
            a = job.action
            return EvalRecord(a.node_id, a.task_id, "error_infra", detail="agent sandbox failed: ConnectionError")
        return super().evaluate(job)

    def infra_problem(self):
        self.probes += 1
        return "the Docker engine does not answer (connection refused)" if self._down() else None


def test_work_waits_for_the_engine_and_goes_on_when_it_is_back(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    sched = make_scheduler(run, 20)
    runner = EngineRunner(tmp_path, healthy=4, down_s=1.0, delay=0.01)
    _, outcome = run_executor(run, sched, runner, workers=3, max_infra_streak=2, infra_wait_s=30)
    assert outcome.stop_reason == "budget_evals"  # errors while the engine was gone did not end the run
    pairs = measured(run)
    assert len(pairs) == 20 and len(set(pairs)) == 20
    infra = [r for r in run.evaluations() if r["status"] == "error_infra"]
    assert 1 <= len(infra) <= 3  # only the jobs in flight when it went: nothing new started meanwhile
    assert all(r["utility"] is None for r in infra)
    assert any("waiting for the sandboxes" in e for e in outcome.errors)
    run.close()


def test_an_engine_that_stays_away_stops_the_run_after_a_bounded_wait(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    sched = make_scheduler(run, 20)
    runner = EngineRunner(tmp_path, healthy=2, down_s=None, delay=0.01)
    t0 = time.monotonic()
    _, outcome = run_executor(run, sched, runner, workers=2, infra_wait_s=1.0)
    assert outcome.stop_reason == "infra_errors"
    assert "does not answer" in outcome.errors[-1] and "waited 1 s" in outcome.errors[-1]
    assert time.monotonic() - t0 < 8
    assert len(measured(run)) == 2 and sched.state.evals_in_flight == 0
    run.close()


class BudgetCutRunner(FakeRunner):
    evals = 0

    def evaluate(self, job):
        self.evals += 1
        a = job.action
        if self.evals > 3:
            return EvalRecord(a.node_id, a.task_id, "abandoned",
                              detail=f"{RUN_BUDGET_SPENT}: cost budget of run would be crossed")
        return EvalRecord(a.node_id, a.task_id, "unresolved")


def test_an_attempt_the_run_budget_cut_short_is_freed_and_the_run_ends(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    sched = make_scheduler(run, 30)
    _, outcome = run_executor(run, sched, BudgetCutRunner(tmp_path), workers=1, budget_usd=1.0)
    assert outcome.stop_reason == "budget_usd"
    assert len(measured(run)) == 3 and sched.state.evals_completed == 3
    run.close()


def test_a_crash_of_the_machinery_never_kills_a_worker_silently(tmp_path: Path, monkeypatch) -> None:
    run = new_run(tmp_path)
    sched = make_scheduler(run, 10)
    ex = Executor(sched, FakeRunner(tmp_path), run, ExecutorLimits(workers=2, tick_s=0.02))

    def broken(job):
        raise RuntimeError("scheduler state corrupted")

    monkeypatch.setattr(sched, "complete_eval", lambda job, success, cost=0.0: broken(job))
    died = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args))
    outcome = ex.run()
    assert outcome.stop_reason == "internal_error" and died == []
    assert any("scheduler state corrupted" in e for e in outcome.errors)
    run.close()
