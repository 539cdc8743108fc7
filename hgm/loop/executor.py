"""The executor: worker threads that drive the scheduler core and record into the archive.

Each of N workers loops `scheduler.dispatch()`: an evaluation or expansion job is
carried out by a `JobHandler` (sandboxes, gateway; `hgm.loop.job_handler`) and its result recorded, in ONE
archive transaction, before it is reported to the scheduler. Evaluations and expansions
run concurrently and asynchronously, as in the reference; the scheduler's pending
counters keep the policy aware of work in flight.

Run control, from the thread that calls `run()` (the main thread in the CLI):
- budgets: evaluations (reserved at dispatch by the scheduler), dollars (checked before
  each dispatch and on every tick; the gateway's reservations make the cap hard, and a
  job whose call the run's budget refused is not a measurement: it is freed and the run
  stops with `budget_usd`) and wall-clock seconds (no job starts when less time is left
  than a typical job takes; at the deadline work in flight is abandoned, no grace);
- `interrupt()` once (Ctrl-C): stop starting work, wait for work in flight up to the
  grace period, then abandon the rest; twice: abandon now. Abandoned work is recorded
  as `abandoned` (not a measurement) and the scheduler frees its (node, task) pair, so
  `hgm resume` re-queues it. An infrastructure error (`error_infra`, or an expansion the
  model provider broke off) or a `contaminated` evaluation (hidden test material reached
  the agent) is recorded and its work freed the same way; too many in a row stop the run
  (`infra_errors`, or `provider_errors` when the provider failed);
- the sandbox engine gone (the handler's optional `infra_problem()` says so after an
  infrastructure error): nothing new starts until it answers again, for at most
  `infra_wait_s`, then the run stops with `infra_errors` and the problem as its message;
- a full disk (fewer than `min_free_bytes` free where the run lives, or any write failing
  with ENOSPC): the job is freed, work in flight is abandoned and the run stops with
  `disk_full` and a one-line message naming the path and the space needed.

No exception ends a worker thread: whatever escapes a job is recorded as the job's
infrastructure error, and a failure of the machinery itself stops the run cleanly.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from archive import space
from archive.errors import ArchiveError, DuplicateEvaluation
from archive.records import EvalRecord, ExpansionRecord
from archive.run import Run

from hgm.evolve.expand import ExpansionOutcome
from hgm.gateway.records import PROVIDER_FAILED, RUN_BUDGET_SPENT
from hgm.loop.scheduler import Job, Scheduler
from hgm.search.actions import Evaluate, Expand, Wait

INFRA_PROBE_S = 1.0  # how often a gone sandbox engine is asked whether it is back

STOP_REASONS = (
    "budget_evals",
    "budget_usd",
    "wall_clock",
    "interrupted",
    "exhausted",
    "infra_errors",
    "provider_errors",
    "disk_full",
    "internal_error",
)


class JobHandler(Protocol):
    """Carries out jobs; never writes to the archive itself (the executor does)."""

    def evaluate(self, job: Job) -> EvalRecord: ...

    def expand(self, job: Job) -> ExpansionOutcome: ...

    def job_cost(self, job: Job) -> tuple[float, int]:
        """Dollars and tokens the gateway has counted for `job` so far."""
        ...

    def cancel_all(self) -> None:
        """Abort every sandbox in use (called when work is abandoned)."""
        ...

    # optional: `after_record(job, result)` is called with each EvalRecord or ExpansionOutcome
    # once it is recorded, outside the recording lock (follow-ups such as memory comparisons)
    # Optional: `infra_problem() -> str | None`, why sandboxes cannot run right now (e.g.
    # the Docker engine does not answer), asked after an infrastructure error.


@dataclass
class _Running:
    job: Job
    worker: str
    started: float
    abandoned: bool = False


@dataclass
class Progress:
    """A snapshot for the live display and the final summary."""

    evals_done: int
    evals_in_flight: int
    budget_evals: int
    nodes: int
    expansions_ok: int
    expansions_failed: int
    infra_errors: int
    cost_usd: float
    tokens: int
    elapsed_s: float
    busy: list[tuple[str, str, float]]  # (worker, what, seconds running)
    stopping: str | None
    view: Any = None  # the scheduler's SearchView at the time of the snapshot


@dataclass
class ExecutorLimits:
    workers: int = 1
    budget_usd: float | None = None
    wall_clock_s: float | None = None  # for this session (the caller subtracts earlier sessions)
    grace_period_s: float = 60.0
    max_infra_streak: int = 6
    max_provider_streak: int = 3  # each of these already survived the gateway's retries
    infra_wait_s: float = 300.0  # how long to wait for a sandbox engine that stopped answering
    min_free_bytes: int = 0  # stop (disk_full) when less is free where the run lives
    tick_s: float = 0.2


@dataclass
class RunOutcome:
    stop_reason: str
    abandoned: int
    elapsed_s: float
    errors: list[str] = field(default_factory=list)


class Executor:
    """Runs a scheduler to completion (or until stopped) with N worker threads."""

    def __init__(
        self,
        scheduler: Scheduler,
        handler: JobHandler,
        run: Run,
        limits: ExecutorLimits,
        *,
        spent: Callable[[], tuple[float, int]] = lambda: (0.0, 0),
        on_tick: Callable[[Progress], None] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.handler = handler
        self.run_archive = run
        self.limits = limits
        self.spent = spent
        self.on_tick = on_tick
        self._lock = threading.Lock()
        self._stop_lock = threading.Lock()
        self._running: dict[int, _Running] = {}
        self._interrupts = 0
        self._stop_reason: str | None = None
        self._grace_deadline: float | None = None
        self._infra_streak = 0
        self._infra_total = 0
        self._abandoned = 0
        self._errors: list[str] = []
        self._t0 = time.monotonic()
        self._deadline: float | None = None  # the wall-clock budget's end (monotonic)
        self._durations: list[float] = []  # seconds of every finished job, for "a typical job"
        self._infra_down: str | None = None  # the engine's problem while we wait for it
        self._infra_since = 0.0
        self._next_probe = 0.0
        self._abandon_now = False
        self.record_s = 0.0  # time spent recording results (archive + scheduler), for benchmarks

    # ------------------------------------------------------------------ control
    def interrupt(self) -> None:
        """Ctrl-C: the first stops starting work, the second abandons work in flight.

        Safe to call from a signal handler: it only counts; `run()` acts on it.
        """
        self._interrupts += 1

    def _begin_stop(self, reason: str, force: bool = False) -> None:
        """Stop starting work for `reason` (the first reason wins, unless `force`)."""
        with self._stop_lock:
            if self._stop_reason is not None and not force:
                return
            self._stop_reason = reason
            grace = time.monotonic() + self.limits.grace_period_s
            if self._deadline is not None:
                grace = min(grace, self._deadline)  # never past the wall-clock budget
            self._grace_deadline = grace if self._grace_deadline is None else min(grace, self._grace_deadline)
        self.scheduler.stop()

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    # ------------------------------------------------------------------ main loop
    def run(self) -> RunOutcome:
        """Start the workers and supervise them until the search ends; return why it ended."""
        self._t0 = time.monotonic()
        if self.limits.wall_clock_s is not None:
            self._deadline = self._t0 + self.limits.wall_clock_s
            if self.limits.wall_clock_s <= 0:
                self._begin_stop("wall_clock")  # spent by earlier sessions: start nothing
        if self._usd_spent():
            self._begin_stop("budget_usd")
        self._check_disk()
        threads = [
            threading.Thread(target=self._worker, name=f"w{i}", daemon=True) for i in range(self.limits.workers)
        ]
        for t in threads:
            t.start()
        abandoned_now = False
        while any(t.is_alive() for t in threads):
            now = time.monotonic()
            if self._interrupts >= 1:
                self._begin_stop("interrupted")
            if self._deadline is not None and now >= self._deadline:
                self._begin_stop("wall_clock")
                self._abandon_now = True  # the deadline is the deadline: no grace period
            if (self._interrupts >= 2 or self._abandon_now
                    or (self._grace_deadline is not None and now >= self._grace_deadline)):
                self._abandon_all()
                abandoned_now = True
                break
            if self._usd_spent():
                self._begin_stop("budget_usd")
            self._watch_infra(now)
            self._tick()
            time.sleep(self.limits.tick_s)
        if abandoned_now:
            for t in threads:
                t.join(timeout=5.0)
        self._tick()
        reason = self._stop_reason or self._natural_end()
        return RunOutcome(reason, self._abandoned, time.monotonic() - self._t0, list(self._errors))

    def _tick(self) -> None:
        if self.on_tick is None:
            return
        try:
            self.on_tick(self.progress())
        except Exception as exc:  # noqa: BLE001 - a display bug must not stop the search
            self._errors.append(f"display failed: {exc.__class__.__name__}: {exc}")
            self.on_tick = None

    def _natural_end(self) -> str:
        return "budget_evals" if self.scheduler.budget_left == 0 else "exhausted"

    def _usd_spent(self) -> bool:
        budget = self.limits.budget_usd
        return budget is not None and self.spent()[0] >= budget

    def typical_job_s(self) -> float | None:
        """The median duration of the jobs finished so far (None before the first)."""
        with self._lock:
            return statistics.median(self._durations) if self._durations else None

    def _time_for_another_job(self) -> bool:
        """False when the wall-clock budget ends before a typical job would."""
        if self._deadline is None:
            return True
        typical = self.typical_job_s()
        return typical is None or time.monotonic() + typical <= self._deadline

    def _check_disk(self) -> bool:
        """Stop with `disk_full` when less than `min_free_bytes` is free where the run lives."""
        need = self.limits.min_free_bytes
        if not need:
            return True
        free = space.free_bytes(self.run_archive.path)
        if free is None or free >= need:
            return True
        self._disk_full(space.disk_full_error(self.run_archive.path, need, resume=self.run_archive.path))
        return False

    def _disk_full(self, exc: BaseException, path: Path | None = None) -> None:
        """The disk is full: say where and what is needed, abandon the rest, stop."""
        if not isinstance(exc, ArchiveError):
            where = Path(getattr(exc, "filename", None) or path or self.run_archive.path)
            exc = space.disk_full_error(where, self.limits.min_free_bytes or space.NEEDED_BYTES,
                                        resume=self.run_archive.path)
        with self._stop_lock:
            first = self._stop_reason != "disk_full"
        if first:
            self._errors.insert(0, str(exc))
        self._begin_stop("disk_full", force=True)
        self._abandon_now = True

    # ------------------------------------------------------------------ infrastructure
    def _infra_problem(self) -> str | None:
        probe = getattr(self.handler, "infra_problem", None)
        if probe is None:
            return None
        try:
            return probe()
        except Exception as exc:  # noqa: BLE001 - a failing probe is a problem too
            return f"{exc.__class__.__name__}: {exc}"

    def _watch_infra(self, now: float) -> None:
        """While the engine is down: resume work when it answers, stop after `infra_wait_s`."""
        if self._infra_down is None or now < self._next_probe:
            return
        self._next_probe = now + INFRA_PROBE_S
        problem = self._infra_problem()
        if problem is None:
            self._infra_down = None
            self.scheduler.notify()
            return
        if now - self._infra_since >= self.limits.infra_wait_s:
            self._errors.append(f"{problem}; waited {self.limits.infra_wait_s:g} s for it to come back")
            self._begin_stop("infra_errors")

    # ------------------------------------------------------------------ workers
    def _worker(self) -> None:
        try:
            self._work()
        except Exception as exc:  # noqa: BLE001 - a thread must never die with a traceback
            if space.is_disk_full(exc):
                self._disk_full(exc)
                return
            self._errors.append(f"worker failed: {exc.__class__.__name__}: {exc}\n{traceback.format_exc(limit=5)}")
            self._begin_stop("internal_error")

    def _work(self) -> None:
        name = threading.current_thread().name
        while True:
            if self._usd_spent():
                self._begin_stop("budget_usd")
            if not self._time_for_another_job():
                self._begin_stop("wall_clock")
            if not self._check_disk():
                return
            if self._infra_down is not None and not self.scheduler.stopped:
                self.scheduler.wait_for_change(0.5)  # the engine is gone: start nothing, wait for it
                continue
            try:
                job = self.scheduler.dispatch()
            except Exception as exc:  # noqa: BLE001 - a policy bug must end the run cleanly
                self._errors.append(f"scheduler failed: {exc.__class__.__name__}: {exc}")
                self._begin_stop("internal_error")
                return
            if job is None:
                # others may still free budget (infra error) or add a node: stay until all are idle
                if not self.scheduler.stopped and self.scheduler.in_flight():
                    self.scheduler.wait_for_change(0.5)
                    continue
                return
            if isinstance(job, Wait):
                self.scheduler.wait_for_change(0.5)
                continue
            with self._lock:
                self._running[job.id] = _Running(job, name, time.monotonic())
            if isinstance(job.action, Evaluate):
                self._do_eval(job)
            else:
                self._do_expand(job)

    def _claim(self, job: Job) -> bool:
        """Take the job out of the running set; False if it was abandoned meanwhile. Hold self._lock."""
        state = self._running.pop(job.id, None)
        return state is not None and not state.abandoned

    def _do_eval(self, job: Job) -> None:
        action = job.action
        assert isinstance(action, Evaluate)
        started = time.time()
        try:
            record = self.handler.evaluate(job)
        except Exception as exc:  # noqa: BLE001 - a bug in the machinery is not the agent's failure
            if space.is_disk_full(exc):
                self._give_back(job)
                self._disk_full(exc)
                return
            cost, tokens = self._job_cost(job)
            record = EvalRecord(
                action.node_id, action.task_id, "error_infra", started=started, tokens=tokens, cost_usd=cost,
                detail=f"internal error: {exc.__class__.__name__}: {exc}"[:2000],
            )
            self._errors.append(traceback.format_exc(limit=5))
        problem = self._infra_problem() if record.utility is None else None  # asked outside the lock
        t_record = time.monotonic()
        with self._lock:
            if not self._claim(job):
                return
            try:
                self.run_archive.record_eval(record)
            except DuplicateEvaluation as exc:  # cannot happen unless the archive was edited meanwhile
                self._errors.append(str(exc))
                self.scheduler.abandon(job)
                return
            except (ArchiveError, OSError) as exc:
                self.scheduler.abandon(job)
                if space.is_disk_full(exc):
                    self._disk_full(exc)
                else:
                    self._errors.append(f"archive refused an evaluation: {exc}")
                    self._begin_stop("internal_error")
                return
            self._durations.append(time.time() - started)
            if record.utility is None:
                self.scheduler.abandon(job)
                self._unmeasured(record.detail, problem)
                self.record_s += time.monotonic() - t_record
                return
            self._infra_streak = 0
            self.scheduler.complete_eval(job, record.utility == 1, cost=record.cost_usd)
            self.record_s += time.monotonic() - t_record
        self._after_record(job, record)

    def _do_expand(self, job: Job) -> None:
        action = job.action
        assert isinstance(action, Expand)
        started = time.time()
        try:
            outcome = self.handler.expand(job)
        except Exception as exc:  # noqa: BLE001 - record the failure, keep the run going
            if space.is_disk_full(exc):
                self._give_back(job)
                self._disk_full(exc)
                return
            cost, tokens = self._job_cost(job)
            reason = f"internal error: {exc.__class__.__name__}: {exc}"[:2000]
            outcome = ExpansionOutcome(
                ExpansionRecord(action.node_id, "failed", reason=reason, cost_usd=cost, tokens=tokens, started=started)
            )
            self._errors.append(traceback.format_exc(limit=5))
        record = outcome.record
        problem = self._infra_problem() if outcome.infra else None  # asked outside the lock
        with self._lock:
            if not self._claim(job):
                return
            try:
                admission = outcome.admission  # the gate's decision: one ledger row with the expansion
                if record.status == "ok" and outcome.child_dir is not None:
                    child_id = self.run_archive.add_node(
                        action.node_id, outcome.child_dir, outcome.operator, record.lesson, record.diagnosis,
                        expansion=record, admission=admission, memory=outcome.memory,
                    )
                else:
                    if record.status == "ok":  # accepted without a tree: a runner bug
                        record = dataclasses.replace(record, status="failed", reason="no child source produced")
                    rejection = admission if admission is not None and admission.decision == "rejected" else None
                    self.run_archive.record_expansion(record, admission=rejection, memory=outcome.memory)
                    child_id = None
            except (ArchiveError, OSError) as exc:
                self.scheduler.abandon(job)
                if space.is_disk_full(exc):
                    self._disk_full(exc)
                else:
                    self._errors.append(f"archive refused an expansion: {exc}")
                return
            self._durations.append(time.time() - started)
            if outcome.infra:  # not the agent's doing: the attempt is free again, not a failure
                self.scheduler.abandon(job)
                self._unmeasured(record.reason, problem)
                return
            self.scheduler.complete_expansion(job, child_id, cost=record.cost_usd)
        self._after_record(job, outcome)

    def _after_record(self, job: Job, result: Any) -> None:
        """The handler's follow-up on a recorded result (may call a model); never stops the run."""
        follow_up = getattr(self.handler, "after_record", None)
        if follow_up is None or self._stop_reason is not None:
            return
        try:
            follow_up(job, result)
        except Exception as exc:  # noqa: BLE001 - a follow-up is never worth a crashed worker
            self._errors.append(f"follow-up of job {job.id} failed: {exc.__class__.__name__}: {exc}")

    def _give_back(self, job: Job) -> None:
        """Free a job that cannot be recorded (unless it was abandoned meanwhile)."""
        with self._lock:
            if self._claim(job):
                self.scheduler.abandon(job)

    def _unmeasured(self, detail: str, problem: str | None) -> None:
        """A job that is not a measurement: why decides what happens next (hold self._lock).

        `problem`: what the handler's `infra_problem()` said after the job ended.
        """
        if detail.startswith(RUN_BUDGET_SPENT):
            self._begin_stop("budget_usd")
            return
        if space.mentions_full_disk(detail):
            self._disk_full(OSError(28, detail[:200]))
            return
        self._count_infra(detail, problem)

    def _count_infra(self, detail: str, problem: str | None = None) -> None:
        """One more infrastructure error in a row; too many stop the run (hold self._lock).

        Errors while the sandbox engine is gone (`problem`) do not count: the bounded wait
        for it covers them.
        """
        self._infra_total += 1
        provider = detail.startswith(PROVIDER_FAILED)
        if problem is not None and not provider:
            if self._infra_down is None:
                self._infra_down, self._infra_since = problem, time.monotonic()
                self._errors.append(f"waiting for the sandboxes: {problem}")
            return
        self._infra_streak += 1
        limit = self.limits.max_provider_streak if provider else self.limits.max_infra_streak
        if self._infra_streak < limit:
            return
        what = "model provider failures" if provider else "unscored attempts (infrastructure errors or contamination)"
        self._errors.append(f"{self._infra_streak} {what} in a row; last: {detail[:300]}")
        self._begin_stop("provider_errors" if provider else "infra_errors")

    def _job_cost(self, job: Job) -> tuple[float, int]:
        try:
            return self.handler.job_cost(job)
        except Exception:  # noqa: BLE001
            return 0.0, 0

    # ------------------------------------------------------------------ abandon
    def _abandon_all(self) -> None:
        """Record every job in flight as abandoned and free it in the scheduler."""
        now = time.time()
        with self._lock:
            states = list(self._running.values())
            self._running.clear()
            for state in states:
                state.abandoned = True
                job = state.job
                cost, tokens = self._job_cost(job)
                started = now - (time.monotonic() - state.started)
                try:
                    if isinstance(job.action, Evaluate):
                        self.run_archive.record_eval(EvalRecord(
                            job.action.node_id, job.action.task_id, "abandoned", started=started,
                            tokens=tokens, cost_usd=cost, detail=f"abandoned ({self._stop_reason})",
                        ))
                    else:
                        self.run_archive.record_expansion(ExpansionRecord(
                            job.action.node_id, "abandoned", reason=f"abandoned ({self._stop_reason})",
                            cost_usd=cost, tokens=tokens, started=started,
                        ))
                except (ArchiveError, OSError) as exc:
                    if not (self._stop_reason == "disk_full" and space.is_disk_full(exc)):  # said once already
                        self._errors.append(f"could not record abandoned job {job.id}: {exc}")
                self.scheduler.abandon(job)
                self._abandoned += 1
        try:
            self.handler.cancel_all()
        except Exception as exc:  # noqa: BLE001
            self._errors.append(f"cancelling sandboxes failed: {exc}")

    # ------------------------------------------------------------------ progress
    def progress(self) -> Progress:
        view = self.scheduler.view()
        cost, tokens = self.spent()
        now = time.monotonic()
        with self._lock:
            busy = []
            for s in self._running.values():
                a = s.job.action
                what = f"eval node {a.node_id} on {a.task_id}" if isinstance(a, Evaluate) else f"expand node {a.node_id}"
                busy.append((s.worker, what, now - s.started))
        state = self.scheduler.state
        return Progress(
            evals_done=view.evals_completed,
            evals_in_flight=view.evals_in_flight,
            budget_evals=self.scheduler.budget_evals,
            nodes=view.n_nodes,
            expansions_ok=state.expansions_succeeded,
            expansions_failed=view.expansions_failed,
            infra_errors=self._infra_total,
            cost_usd=cost,
            tokens=tokens,
            elapsed_s=now - self._t0,
            busy=sorted(busy),
            stopping=self._stop_reason,
            view=view,
        )
