"""One session of an evolution run: set everything up, run the executor, tear down.

`start_run(config, run_dir)` creates a run (config frozen, seed agent as node 0);
`resume_run(run_dir)` reopens one with its frozen config. Both then:

1. load the suite's tasks, pick the sandbox backend, start the run's LLM gateway (its
   spending ledger preloaded with what earlier sessions spent); with the Ray executor
   instead connect to the cluster and start a gateway on every node that offers slots
   (`hgm.loop.ray_executor`);
2. rebuild the search state from the archive (every measured evaluation, every node,
   every failed expansion) so nothing finished is redone and no (node, task) pair is
   evaluated twice; work that was in flight when a session died is simply free again.
   The first session decides the confirmation on held-out tasks (`policy.confirm`) and
   logs it; later sessions reuse it;
3. open the run's lessons memory (its archive, and the bank shared by runs when
   `memory.bank` names one: this run's items are copied there at the start and the end,
   new ones as they come);
4. run the executor with N workers until a budget is spent, the search is exhausted
   or the user interrupts; then record how the session ended.

Nothing of a session outlives it, even a kill -9 (`hgm.loop.leftovers`): a new session
first removes what a dead one left, and sweeps its own sandboxes when it ends. A resumed
run uses its frozen config with any budget extension applied (`hgm.loop.budgets`).
"""

from __future__ import annotations

import importlib.util
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

from archive import space
from archive.errors import ArchiveError
from archive.run import Run
from archive.tree import Tree

from sandbox.tracking import TrackingBackend

from hgm.config import ConfigError, RunConfig
from hgm.evaluation.attempts import AttemptsPolicy
from hgm.evaluation.evaluate import EvalSetup, SolveLimits
from hgm.evolve.agent_files import agent_files
from hgm.evolve.expand import ExpandSetup
from hgm.evolve.gate import GateSettings, settings_from_config
from hgm.evolve.improve import ImproveLimits
from hgm.evolve.memory import RunMemory
from hgm.evolve.protected import default_manifest
from hgm.gateway.chat import gateway_chat
from hgm.gateway.costs import CostBook
from hgm.gateway.redact import Redactor
from hgm.loop.executor import Executor, ExecutorLimits, JobHandler, Progress, RunOutcome
from hgm.loop.budgets import effective_config
from hgm.loop.job_handler import SandboxJobHandler
from hgm.loop.leftovers import LABEL_RUN_DIR, gateway_dir, remove_leftovers, session_tempdir, sweep, system_temp, temp_root
from hgm.loop.scheduler import Scheduler
from hgm.search.confirm import PLAN_EVENT, ConfirmPlan, plan_for, search_first
from hgm.search.report import earlier_elapsed, run_summary, spent_so_far
from hgm.search.state import SearchState

FINISHED_REASONS = ("budget_evals", "budget_usd", "wall_clock", "exhausted")


class RunSetupError(RuntimeError):
    """The run cannot start; the message is one line naming what to fix."""


@dataclass
class SessionResult:
    outcome: RunOutcome
    summary: dict[str, Any]
    session: str
    messages: list[str] = field(default_factory=list)
    executor: Any = None  # kept for benchmarks and tests (record_s)
    handler: Any = None


def seed_agent_tree(dest: Path) -> Path:
    """Copy the installed seed agent package into `dest/agent` (the tree stored as node 0).

    The package is found by path, never imported: hgm does not depend on the agent's code.
    """
    spec = importlib.util.find_spec("agent")
    if spec is None or spec.origin is None:
        raise RunSetupError("the seed agent package `agent` is not installed; reinstall hgm (pip install -e .)")
    src = Path(spec.origin).resolve().parent
    shutil.copytree(src, dest / "agent", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def open_suite(config: RunConfig) -> Any:
    """The run's suite, pulling task images from `config.registry` when one is named."""
    from evaluators.suite import load_suite

    suite = load_suite(config.suite)
    if config.registry:
        if not hasattr(suite, "registry"):
            raise RunSetupError(f"--registry applies to SWE-bench suites; {config.suite!r} is a {suite.kind} suite")
        suite.registry = config.registry
    return suite


def load_tasks(config: RunConfig) -> tuple[Any, dict[str, Any], list[str]]:
    """(suite, tasks by id in suite order, notes about skipped tasks)."""
    from evaluators.suite import SuiteError
    from evaluators.task import TaskError

    try:
        suite = open_suite(config)
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
    """The search state as the archive knows it: nodes, measured evaluations, failed expansions.

    Retired clades (`hgm retire`) are left out, so they are neither expanded, evaluated nor
    shipped; what they cost still counts: their nodes as expansion attempts (failed ones,
    for the expand rule and the budget) and their evaluations against the budget.
    """
    state = SearchState(tuple(task_ids))
    known = set(task_ids)
    retired = tree.retired_clades()
    for node_id in sorted(tree.nodes):
        node = tree.nodes[node_id]
        if node_id in retired:
            continue
        parent = node.parent_id if node.parent_id in tree.nodes else None
        state.add_node(node_id, parent)
    retired_evals = 0
    for row in evals:
        if row["utility"] is None or row["task_id"] not in known:
            continue
        if row["node_id"] in retired:
            retired_evals += 1
            continue
        if not state.has_node(row["node_id"]):
            continue
        state.record_eval(row["node_id"], row["task_id"], bool(row["utility"]), in_flight=False,
                          cost=float(row.get("cost_usd") or 0.0))
    state.evals_completed += retired_evals
    state.expansions_succeeded = state.n_nodes - 1
    state.expansions_failed = len(retired) + sum(
        1 for row in failed
        if row["status"] == "failed" and (state.has_node(row["parent_id"]) or row["parent_id"] in retired))
    return state


def confirmation_plan(run: Run, config: RunConfig, task_ids: list[str], first_session: bool) -> ConfirmPlan | None:
    """The run's confirmation on held-out tasks: decided (and logged) by its first session only.

    Later sessions reuse the logged plan, so the held-out tasks stay unseen by the search;
    a run whose first session logged none (or an older run) never confirms.
    """
    logged = run.events(PLAN_EVENT)
    if logged:
        plan = logged[0]["payload"].get("plan")
        if plan is None:
            return None
        plan = ConfirmPlan.from_json(plan)
        missing = sorted(set(plan.holdout) - set(task_ids))
        if missing:
            raise RunSetupError(f"held-out task {missing[0]} of this run is no longer in suite {config.suite!r}; "
                                "restore the suite to resume")
        return plan
    if not first_session:
        return None
    plan = plan_for(config.policy, task_ids, config.budget.evals, config.seed)
    run.log_event(PLAN_EVENT, {"plan": plan.to_json() if plan else None})
    return plan


def make_scheduler(config: RunConfig, state: SearchState, session_index: int,
                   confirmation: ConfirmPlan | None = None) -> Scheduler:
    """The scheduler of one session: the configured policy (as `hgm simulate` builds it), budgets, confirmation."""
    from hgm.policies import make_policy

    try:
        policy = make_policy(config.policy.name, config.policy.policy_options(config.seed))
    except (TypeError, ValueError) as exc:
        raise RunSetupError(f"policy {config.policy.name}: {exc}") from None
    rng = np.random.default_rng([config.seed, session_index])
    return Scheduler(state, policy, budget_evals=config.budget.evals,
                     budget_expansions=config.budget.max_expansions(), rng=rng,
                     seed_evals=config.seed_evals, task_order_seed=config.seed, confirmation=confirmation)


def create_run(config: RunConfig, run_dir: Path) -> Run:
    """A new run directory with `config` frozen and the seed agent as node 0.

    Refused (nothing written) when the disk has less than `config.min_free_mb` free.
    """
    check_free_space(run_dir, config)
    with tempfile.TemporaryDirectory(prefix="hgm-seed-") as tmp:
        seed = seed_agent_tree(Path(tmp))
        if config.gate.protected is None:  # the gate's manifest, computed once from the seed, frozen
            gate = config.gate.model_copy(update={"protected": default_manifest(agent_files(seed))})
            config = config.model_copy(update={"gate": gate})
        try:
            return Run.create(run_dir, config.frozen(), seed)
        except ArchiveError as exc:
            raise RunSetupError(str(exc)) from None


def check_free_space(path: Path, config: RunConfig) -> None:
    """RunSetupError naming the path and the space needed when the disk is (nearly) full."""
    need = int(config.min_free_mb * 1_000_000)
    free = space.free_bytes(path)
    if need and free is not None and free < need:
        raise RunSetupError(str(space.disk_full_error(path, need, resume=path if (path / "hgm.db").exists() else None)))


def open_for_resume(run_dir: Path, *, accept_loss: bool = False) -> tuple[Run, RunConfig]:
    """The run opened for writing and its effective config (budget extensions applied)."""
    try:
        run = Run.open(run_dir, writable=True, accept_loss=accept_loss)
    except ArchiveError as exc:
        raise RunSetupError(str(exc)) from None
    try:
        return run, effective_config(run)
    except ConfigError as exc:
        run.close()
        raise RunSetupError(str(exc)) from None


def _backend(config: RunConfig) -> Any:
    from sandbox import SandboxError, get_backend

    try:
        return get_backend(config.sandbox)
    except SandboxError as exc:
        raise RunSetupError(str(exc)) from None


def _gateway(config: RunConfig, recorder: Callable, preload: tuple[float, int], socket_path: str | None = None) -> Any:
    from hgm.gateway import start_gateway
    from hgm.gateway.config import run_gateway_config

    gw_config = run_gateway_config(config.model, api_base=config.api_base, run_usd=config.budget.usd,
                                   attempt_usd=config.agent.attempt_usd, seed=config.seed, socket_path=socket_path,
                                   evaluation_tokens=config.evaluation.max_tokens,
                                   evaluation_usd=config.evaluation.max_usd)
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
    handler_factory: Callable[..., JobHandler] | None = None,
    backend: Any = None,
) -> SessionResult:
    """Run one session on an open, writable run until it ends; the run stays open.

    `handler_factory(**parts)` replaces the job handler (benchmarks and tests); it gets the
    keyword arguments of `SandboxJobHandler` (of `RayJobHandler` with `executor = "ray"`).
    With the Ray executor `workers` defaults to the cluster's slots, not `config.workers`.
    """
    suite, tasks, notes = load_tasks(config)
    previous_sessions = len(run.events("session_start"))
    plan = confirmation_plan(run, config, list(tasks), first_session=previous_sessions == 0)
    state = build_state(run.tree(), list(search_first(list(tasks), plan)), run.expansions(), run.evaluations())
    elapsed_before = earlier_elapsed(run)
    preload = spent_so_far(run)
    scheduler = make_scheduler(config, state, previous_sessions, plan)
    session = uuid.uuid4().hex[:8]
    costs = CostBook(lambda record: store_call(run, record), preload)
    wall_left = None
    if config.budget.wall_clock_s is not None:
        wall_left = max(0.0, config.budget.wall_clock_s - elapsed_before)
    notes = list(notes)
    labels = {LABEL_RUN_DIR: str(run.path.resolve())}
    with ExitStack() as stack:
        memory: RunMemory | None = None
        if config.executor == "ray":  # jobs run as Ray tasks; everything else stays here
            from hgm.loop.ray_executor import start_ray_jobs

            handler, backend_name, workers = start_ray_jobs(
                stack, run=run, config=config, tasks=tasks, costs=costs, session_id=session,
                session_index=previous_sessions, workers=workers, on_environment=EnvironmentLog(run),
                handler_factory=handler_factory,
            )
        else:
            handler, backend_name, memory = _local_jobs(stack, run, config, suite, tasks, costs, preload, session,
                                                        previous_sessions, backend, handler_factory, notes, labels)
        limits = ExecutorLimits(
            workers=workers or config.workers,
            budget_usd=config.budget.usd,
            wall_clock_s=wall_left,
            grace_period_s=config.grace_period_s,
            infra_wait_s=config.infra_wait_s,
            min_free_bytes=int(config.min_free_mb * 1_000_000),
        )
        executor = Executor(scheduler, handler, run, limits, spent=costs.totals, on_tick=on_tick)
        try:
            run.log_event("session_start", {
                "session": session, "workers": limits.workers, "backend": backend_name, "model": config.model,
                "executor": config.executor,
                "evals_done": state.evals_completed, "nodes": state.n_nodes, "notes": notes,
            })
            run.set_status("running")
        except ArchiveError as exc:
            raise RunSetupError(str(exc)) from None
        restore = _install_signals(executor) if install_signals else (lambda: None)
        stack.callback(restore)
        outcome = executor.run()
        status = "finished" if outcome.stop_reason in FINISHED_REASONS else "stopped"
        if outcome.stop_reason == "disk_full":
            run.free_reserve()  # room for the last words below
        _log(run, "session_end", {
            "session": session, "reason": outcome.stop_reason, "elapsed_s": outcome.elapsed_s,
            "abandoned": outcome.abandoned, "errors": (outcome.errors + (memory.errors if memory else []))[:20],
        }, notes)
        if memory is not None:
            memory.sync_bank()
        try:
            run.set_status(status)
        except ArchiveError as exc:
            notes.append(f"could not record the run's status ({exc})")
    summary = run_summary(run)
    summary["stop_reason"] = outcome.stop_reason
    summary["abandoned"] = outcome.abandoned
    summary["session_elapsed_s"] = round(outcome.elapsed_s, 3)
    summary["budget_evals"] = config.budget.evals
    return SessionResult(outcome, summary, session, notes, executor, handler)


def _local_jobs(
    stack: ExitStack, run: Run, config: RunConfig, suite: Any, tasks: dict[str, Any], costs: CostBook,
    preload: tuple[float, int], session: str, session_index: int, backend: Any,
    handler_factory: Callable[..., JobHandler] | None, notes: list[str], labels: dict[str, str],
) -> tuple[JobHandler, str, RunMemory | None]:
    """The thread executor's job handler: sandboxes on this machine and the run's gateway.

    What an earlier, killed session left (sandboxes, temp files, sockets) is removed first;
    every sandbox gets its own gateway identity (a socket under the run's socket folder).
    """
    root = stack.enter_context(session_tempdir(temp_root(run.path, system_temp())))
    tracking = TrackingBackend(backend if backend is not None else _backend(config))
    removed, problem = remove_leftovers(run.path, tracking, root)
    root.mkdir(parents=True, exist_ok=True)
    if removed:
        notes.append(f"removed what an earlier session left behind: {len(removed)} item(s) "
                     f"({', '.join(sorted({r.split()[0] for r in removed}))})")
        _log(run, "leftovers_removed", {"removed": removed[:200]}, notes)
    if problem:
        notes.append(problem)
    sockets = gateway_dir(run.path)
    sockets.mkdir(mode=0o711, parents=True, exist_ok=True)
    sockets.chmod(0o711)  # reachable by path, not listable: sandboxes find only their own socket
    stack.callback(shutil.rmtree, sockets, True)
    stack.callback(sweep, tracking, labels, notes)
    gateway = _gateway(config, costs, preload, str(sockets / "llm.sock"))
    stack.callback(gateway.close)
    memory = open_memory(run, config, gateway)
    if memory is not None:
        stack.callback(memory.close)
        memory.sync_bank()
    handler = (handler_factory or SandboxJobHandler)(
        run=run, eval_setup=eval_setup(config, suite, tracking, gateway, costs, run.path, EnvironmentLog(run)),
        expand_setup=expand_setup(config, tasks, tracking, gateway, run.path, gate_settings(run), memory),
        costs=costs, backend=tracking,
        session_id=session, session_index=session_index, seed=config.seed, release=gateway.release,
    )
    return handler, tracking.name, memory


def _log(run: Run, kind: str, payload: dict[str, Any], notes: list[str]) -> None:
    """Log an event; a full disk becomes a note instead of a crash."""
    try:
        run.log_event(kind, payload)
    except ArchiveError as exc:
        notes.append(f"could not record the {kind} event ({exc})")


def eval_setup(
    config: RunConfig, suite: Any, backend: Any, gateway: Any, costs: CostBook, root: Path,
    on_environment: Callable[[Any, Any], None] | None = None,
) -> EvalSetup:
    """What every evaluation of this run shares (limits from the run's agent config)."""
    limits = SolveLimits(
        max_steps=config.agent.solve_step_limit,
        solve_timeout_s=config.agent.solve_timeout_s,
        test_timeout_s=config.agent.test_timeout_s,
        labels=(("hgm.run", Path(root).name), (LABEL_RUN_DIR, str(Path(root).resolve()))),
    )
    return EvalSetup(backend=backend, suite=suite, access=gateway.access, costs=costs, limits=limits, root=Path(root),
                     on_environment=on_environment, test_machinery=config.grading.test_machinery,
                     redact=Redactor.from_environ(),
                     attempts=AttemptsPolicy.from_config(config.evaluation, config.model),
                     chat=gateway_chat(gateway.url, gateway.config.alias, config.agent.solve_timeout_s))


def gate_settings(run: Run) -> GateSettings:
    """The gate as the run froze it; a run made before manifests were frozen gets its seed's."""
    settings = settings_from_config(run.config.get("gate") or {})
    if settings.protected is not None:
        return settings
    tree = run.tree()
    with tempfile.TemporaryDirectory(prefix="hgm-seed-") as tmp:
        run.checkout(tree.root_id if tree.root_id is not None else 0, Path(tmp) / "seed")
        manifest = default_manifest(agent_files(Path(tmp) / "seed"))
    return GateSettings(manifest, settings.max_size_ratio, settings.max_file_bytes)


def open_memory(run: Run, config: RunConfig, gateway: Any) -> RunMemory | None:
    """The run's lessons memory (None when `memory.enabled` is off), with its bank if configured."""
    from archive.errors import ArchiveError
    from archive.memory import MemoryBank

    settings = config.memory
    if not settings.enabled:
        return None
    bank = None
    if settings.bank:
        try:
            bank = MemoryBank.open(Path(settings.bank), create=True)
        except ArchiveError as exc:
            raise RunSetupError(str(exc)) from None
    chat_for = gateway_chat(gateway.url, gateway.config.alias, config.agent.improve_timeout_s)
    return RunMemory(run, settings, config.model, chat_for, Redactor.from_environ(), bank)


def expand_setup(config: RunConfig, tasks: dict[str, Any], backend: Any, gateway: Any, run_path: Path,
                 gate: GateSettings | None = None, memory: RunMemory | None = None) -> ExpandSetup:
    """What every expansion of this run shares (`gate`: the run's frozen gate, default settings if None)."""
    limits = ImproveLimits(
        improve_timeout_s=config.agent.improve_timeout_s,
        test_timeout_s=config.agent.test_timeout_s,
        max_steps=config.agent.improve_step_limit,
        python=backend.python,
        labels=(("hgm.run", Path(run_path).name), (LABEL_RUN_DIR, str(Path(run_path).resolve()))),
    )
    return ExpandSetup(backend=backend, access=gateway.access, gateway_url=gateway.url, alias=gateway.config.alias,
                       model=config.model, tasks=tasks, evolve=config.evolve, limits=limits,
                       diagnose_timeout_s=config.agent.improve_timeout_s, gate=gate or settings_from_config(config.gate),
                       redact=Redactor.from_environ(), memory=memory)


class EnvironmentLog:
    """Logs, once per task, how its environment was obtained (an `environment` event)."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, task: Any, environment: Any) -> None:
        with self._lock:
            if task.instance_id in self._seen:
                return
            self._seen.add(task.instance_id)
        self._run.log_event("environment", {"task": task.instance_id, "how": environment.how,
                                            "image": environment.image, "detail": environment.detail})


def store_call(run: Run, record: Any) -> None:
    """Store one gateway call record in the run's archive (its tags give node, task, purpose)."""
    tags = record.tags or {}
    node = tags.get("node")
    run.record_llm_call(
        model=str(record.model),
        purpose=tags.get("purpose", ""),
        node_id=int(node) if node is not None and str(node).isdigit() else None,
        task_id=tags.get("task"),
        prompt_tokens=int(record.prompt_tokens),
        completion_tokens=int(record.completion_tokens),
        cost_usd=float(record.cost or 0.0),
        latency_s=record.latency_s,
        error=record.error,
        at=record.started_at,
    )


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

