"""One session of an evolution run: set everything up, run the executor, tear down.

`start_run(config, run_dir)` creates a run (config frozen, seed agent as node 0);
`resume_run(run_dir)` reopens one with its frozen config. Both then:

1. load the suite's tasks, pick the sandbox backend, start the run's LLM gateway (its
   spending ledger preloaded with what earlier sessions spent);
2. rebuild the search state from the archive (every measured evaluation, every node,
   every failed expansion) so nothing finished is redone and no (node, task) pair is
   evaluated twice; work that was in flight when a session died is simply free again;
3. run the executor with N workers until a budget is spent, the search is exhausted
   or the user interrupts; then record how the session ended.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from archive.run import Run
from archive.tree import Tree

from hgm.config import ConfigError, RunConfig, config_from_frozen
from hgm.loop.executor import Executor, ExecutorLimits, JobRunner, Progress, RunOutcome
from hgm.loop.scheduler import Scheduler
from hgm.loop.state import FailedExpansion, SearchState
from hgm.loop.summary import earlier_elapsed, run_summary, spent_so_far

FINISHED_REASONS = ("budget_evals", "budget_usd", "wall_clock", "exhausted")


class RunSetupError(RuntimeError):
    """The run cannot start; the message is one line naming what to fix."""


@dataclass
class SessionResult:
    outcome: RunOutcome
    summary: dict[str, Any]
    session: str
    messages: list[str] = field(default_factory=list)
    executor: Any = None  # kept for benchmarks and tests (timings, record_s)
    runner: Any = None


def seed_agent_tree(dest: Path) -> Path:
    """Copy the installed seed agent package into `dest/agent` (the tree stored as node 0)."""
    import agent

    src = Path(agent.__file__).resolve().parent
    shutil.copytree(src, dest / "agent", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def load_tasks(config: RunConfig) -> tuple[Any, dict[str, Any], list[str]]:
    """(suite, tasks by id in suite order, notes about skipped tasks)."""
    from evaluators.suite import SuiteError, load_suite
    from evaluators.task import TaskError

    try:
        suite = load_suite(config.suite)
        tasks = suite.select(list(config.tasks) if config.tasks else None)
    except (SuiteError, TaskError, OSError) as exc:
        raise RunSetupError(str(exc)) from None
    notes = []
    usable = []
    for task in tasks:
        reason = suite.skip_reason(task)
        if reason:
            notes.append(f"skipping task {task.instance_id}: {reason}")
        else:
            usable.append(task)
    if config.max_tasks:
        usable = usable[: config.max_tasks]
    if not usable:
        raise RunSetupError(f"suite {config.suite!r} has no usable task here" + (f" ({notes[0]})" if notes else ""))
    return suite, {t.instance_id: t for t in usable}, notes


def build_state(tree: Tree, task_ids: list[str], failed: list[dict[str, Any]], evals: list[dict[str, Any]]) -> SearchState:
    """The search state as the archive knows it: nodes, measured evaluations, failed expansions."""
    state = SearchState(tuple(task_ids))
    known = set(task_ids)
    for node_id in sorted(tree.nodes):
        node = tree.nodes[node_id]
        parent = node.parent_id if node.parent_id in tree.nodes else None
        state.add_node(node_id, parent)
    for row in evals:
        if row["utility"] is None or row["task_id"] not in known or not state.has_node(row["node_id"]):
            continue
        state.record_eval(row["node_id"], row["task_id"], bool(row["utility"]), in_flight=False,
                          cost=float(row.get("cost_usd") or 0.0))
    state.expansions_succeeded = state.n_nodes - 1
    for row in failed:
        if row["status"] == "failed" and state.has_node(row["parent_id"]):
            state.failed_expansions.append(FailedExpansion(row["parent_id"], row["reason"], float(row["cost_usd"] or 0.0)))
    return state


def make_scheduler(config: RunConfig, state: SearchState, session_index: int) -> Scheduler:
    from hgm.policies import make_policy

    try:
        policy = make_policy(config.policy.name, config.policy.policy_options(config.seed))
    except (TypeError, ValueError) as exc:
        raise RunSetupError(f"policy {config.policy.name}: {exc}") from None
    rng = np.random.default_rng([config.seed, session_index])
    return Scheduler(state, policy, budget_evals=config.budget.evals,
                     budget_expansions=config.budget.max_expansions(), rng=rng,
                     seed_evals=config.seed_evals, task_order_seed=config.seed)


def create_run(config: RunConfig, run_dir: Path) -> Run:
    """A new run directory with `config` frozen and the seed agent as node 0."""
    from archive.errors import ArchiveError

    with tempfile.TemporaryDirectory(prefix="hgm-seed-") as tmp:
        seed = seed_agent_tree(Path(tmp))
        try:
            return Run.create(run_dir, config.frozen(), seed)
        except ArchiveError as exc:
            raise RunSetupError(str(exc)) from None


def open_for_resume(run_dir: Path) -> tuple[Run, RunConfig]:
    from archive.errors import ArchiveError

    try:
        run = Run.open(run_dir, writable=True)
    except ArchiveError as exc:
        raise RunSetupError(str(exc)) from None
    try:
        return run, config_from_frozen(run.config)
    except ConfigError as exc:
        run.close()
        raise RunSetupError(str(exc)) from None


def _backend(config: RunConfig) -> Any:
    from sandbox import SandboxError, get_backend

    try:
        return get_backend(config.sandbox)
    except SandboxError as exc:
        raise RunSetupError(str(exc)) from None


def _gateway(config: RunConfig, recorder: Callable, preload: tuple[float, int]) -> Any:
    from hgm.gateway import BudgetLimit, GatewayConfig, start_gateway

    gw_config = GatewayConfig(
        model=config.model,
        run_budget=BudgetLimit(cost=config.budget.usd),
        seed=config.seed,
    )
    try:
        gateway = start_gateway(gw_config, recorder)
    except ValueError as exc:
        raise RunSetupError(f"model {config.model!r}: {exc}") from None
    if preload[0] or preload[1]:
        gateway.ledger.add({}, preload[1], preload[0])
    return gateway


def run_session(
    run: Run,
    config: RunConfig,
    *,
    workers: int | None = None,
    on_tick: Callable[[Progress], None] | None = None,
    install_signals: bool = True,
    runner_factory: Callable[..., JobRunner] | None = None,
    backend: Any = None,
) -> SessionResult:
    """Run one session on an open, writable run until it ends; the run stays open."""
    from hgm.loop.jobs import CostBook, LLMAccess, SandboxJobRunner, TrackingBackend

    suite, tasks, notes = load_tasks(config)
    archive_lock = threading.RLock()
    with archive_lock:
        state = build_state(run.tree(), list(tasks), run.expansions(), run.evaluations())
        previous_sessions = len(run.events("session_start"))
        elapsed_before = earlier_elapsed(run)
        preload = spent_so_far(run)
    scheduler = make_scheduler(config, state, previous_sessions)
    session = uuid.uuid4().hex[:8]
    costs = CostBook(run, archive_lock, preload)
    wall_left = None
    if config.budget.wall_clock_s is not None:
        wall_left = max(0.0, config.budget.wall_clock_s - elapsed_before)
    with ExitStack() as stack:
        tracking = TrackingBackend(backend if backend is not None else _backend(config))
        gateway = _gateway(config, costs, preload)
        stack.callback(gateway.close)
        llm = LLMAccess(gateway.socket_path, gateway.config.alias, tracking.name)
        factory = runner_factory or SandboxJobRunner
        runner = factory(
            run=run, config=config, suite=suite, tasks=tasks, backend=tracking, llm=llm,
            gateway_url=gateway.url, costs=costs, archive_lock=archive_lock, session_id=session,
            session_index=previous_sessions,
        )
        limits = ExecutorLimits(
            workers=workers or config.workers,
            budget_usd=config.budget.usd,
            wall_clock_s=wall_left,
            grace_period_s=config.grace_period_s,
        )
        executor = Executor(scheduler, runner, run, limits, archive_lock=archive_lock,
                            spent=costs.totals, on_tick=on_tick)
        with archive_lock:
            run.log_event("session_start", {
                "session": session, "workers": limits.workers, "backend": tracking.name, "model": config.model,
                "evals_done": state.evals_completed, "nodes": state.n_nodes, "notes": notes,
            })
            run.set_status("running")
        restore = _install_signals(executor) if install_signals else (lambda: None)
        stack.callback(restore)
        outcome = executor.run()
        status = "finished" if outcome.stop_reason in FINISHED_REASONS else "stopped"
        with archive_lock:
            run.log_event("session_end", {
                "session": session, "reason": outcome.stop_reason, "elapsed_s": outcome.elapsed_s,
                "abandoned": outcome.abandoned, "errors": outcome.errors[:20],
            })
            run.set_status(status)
    with archive_lock:
        summary = run_summary(run)
    summary["stop_reason"] = outcome.stop_reason
    summary["abandoned"] = outcome.abandoned
    summary["session_elapsed_s"] = round(outcome.elapsed_s, 3)
    summary["budget_evals"] = config.budget.evals
    return SessionResult(outcome, summary, session, notes, executor, runner)


def _install_signals(executor: Executor) -> Callable[[], None]:
    """Ctrl-C / SIGTERM count as interrupts of the executor (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: object) -> None:
        executor.interrupt()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore

