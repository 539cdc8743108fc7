"""The Ray executor, head side: the same supervision as threads, jobs run as Ray tasks.

The cut: `Executor` (budgets, Ctrl-C, infra streaks, one archive transaction per result,
the scheduler's view of work in flight) is the same object for both executors; what
differs is the `JobHandler` its worker threads call. `SandboxJobHandler` runs a job in
this process; `RayJobHandler` sends it to a node with a free slot as a Ray task and
blocks that worker thread on the result, so the head runs one thread per job in flight
(the cluster's slots by default) and the policy sees work in flight exactly as with
threads. Results come back as values; the head unpacks the job's files into the run
directory and returns the record to the executor, which records it.

Also here: `NodeFleet`, the node services (one per node offering slots, each running
that node's gateway; `hgm.loop.ray_node`), and the collector thread that brings their
call records into the run's cost book (and archive) every `COLLECT_S` seconds and tells
them the run's spend, so the dollar cap holds across nodes.

A job whose worker or node is lost is run again by Ray (`ray.max_retries`); only the
attempt whose result arrives is recorded, and a result for a job the executor already
gave up on is dropped by the executor, as with threads. A retried job is logged as a
`job_retried` event.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections import deque
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Mapping

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from archive.records import EvalRecord
from archive.run import Run

from hgm.config import RunConfig
from hgm.evolve.expand import ExpansionOutcome
from hgm.gateway.config import run_gateway_config
from hgm.gateway.costs import CostBook
from hgm.gateway.records import CallRecord
from hgm.loop import ray_cluster
from hgm.loop.job_handler import eval_dir, eval_views, expansion_dir, expansion_seed
from hgm.loop.ray_node import (
    AgentRef,
    EvalJob,
    ExpandJob,
    JobResult,
    NodeService,
    SessionSpec,
    evaluate_job,
    expand_job,
    service_name,
)
from hgm.loop.ray_transfer import pack_eval_views, unpack_dir
from hgm.loop.scheduler import Job
from hgm.loop.session import RunSetupError
from hgm.search.actions import Evaluate, Expand

COLLECT_S = 1.0
SERVICE_START_S = 120.0
MAX_WORKERS = 1024
# what a node's gateway may need from this environment: provider keys and settings
_KEY_SUFFIXES = ("_API_KEY", "_API_BASE", "_API_VERSION", "_BASE_URL", "_ORGANIZATION")
_KEY_PREFIXES = ("LITELLM_", "AWS_", "AZURE_", "VERTEX")


def gateway_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables a node's gateway gets through its runtime environment (never a sandbox)."""
    return {k: v for k, v in environ.items() if k.endswith(_KEY_SUFFIXES) or k.startswith(_KEY_PREFIXES)}


class NodeFleet:
    """The node services of one session, and the call records they hand over."""

    def __init__(self, session_id: str, gateway_config: Any, costs: CostBook, slot_resource: str,
                 env: Mapping[str, str]) -> None:
        self.session_id = session_id
        self.gateway_config = gateway_config
        self.costs = costs
        self.slot_resource = slot_resource
        self.env = dict(env)
        self._lock = threading.Lock()
        self._services: dict[str, Any] = {}
        self._spend: dict[str, tuple[float, int]] = {}  # job key -> spend over all its attempts
        self._attempts: dict[str, set[str]] = {}  # job key -> attempts begun
        self.problems: deque[str] = deque(maxlen=50)  # lost nodes, failed collections (logged at the end)

    @property
    def nodes(self) -> list[str]:
        with self._lock:
            return list(self._services)

    def refresh(self) -> None:
        """A service on every alive node that offers slots; forget those of lost nodes."""
        alive = {n.node_id for n in ray_cluster.slot_nodes(self.slot_resource)}
        with self._lock:
            known = set(self._services)
            for node_id in known - alive:
                del self._services[node_id]
        for node_id in sorted(alive - known):
            actor = ray.remote(NodeService).options(
                name=service_name(self.session_id, node_id), num_cpus=0, max_concurrency=16,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
                runtime_env={"env_vars": self.env} if self.env else None,
            ).remote(node_id, self.session_id, self.gateway_config, self.costs.totals())
            with self._lock:
                self._services[node_id] = actor

    def wait_ready(self, timeout_s: float = SERVICE_START_S) -> None:
        """Block until every service answers; a service that fails to start is a RunSetupError."""
        with self._lock:
            services = dict(self._services)
        for node_id, actor in services.items():
            try:
                ray.get(actor.endpoint.remote(), timeout=timeout_s)
            except Exception as exc:  # noqa: BLE001 - RayActorError, GetTimeoutError
                raise RunSetupError(f"the hgm service on Ray node {node_id[:12]} did not start: {_short(exc)}") from None

    def collect(self) -> None:
        """Bring every service's new call records into the cost book; tell them the run's spend."""
        with self._lock:
            services = dict(self._services)
        spent = self.costs.totals()
        pending = {node_id: actor.exchange.remote(spent) for node_id, actor in services.items()}
        for node_id, ref in pending.items():
            try:
                records, starts = ray.get(ref, timeout=30)
            except ray.exceptions.GetTimeoutError:
                continue
            except ray.exceptions.RayError as exc:  # its node is gone: its records with it
                self.problems.append(f"node {node_id[:12]}: {_short(exc)}")
                with self._lock:
                    self._services.pop(node_id, None)
                continue
            self.ingest(records, starts)

    def ingest(self, records: list[CallRecord], starts: list[tuple[str, str]] = ()) -> None:
        """Count call records (cost book, archive) and note the attempts begun."""
        for record in records:
            self.costs(record)
            job = str(record.tags.get("job", "")).rsplit(".", 1)[0]
            with self._lock:
                cost, tokens = self._spend.get(job, (0.0, 0))
                self._spend[job] = (cost + float(record.cost or 0.0),
                                    tokens + record.prompt_tokens + record.completion_tokens)
        with self._lock:
            for job_key, attempt in starts:
                self._attempts.setdefault(job_key, set()).add(attempt)

    def spend(self, job_key: str) -> tuple[float, int]:
        with self._lock:
            return self._spend.get(job_key, (0.0, 0))

    def attempts(self, job_key: str) -> set[str]:
        with self._lock:
            return set(self._attempts.get(job_key, ()))

    def close(self) -> None:
        """Collect the last records and stop every service."""
        with self._lock:
            services, self._services = dict(self._services), {}
        for actor in services.values():
            try:
                self.ingest(ray.get(actor.close.remote(), timeout=30))
            except Exception:  # noqa: BLE001 - a lost node keeps its last records
                pass
            ray.kill(actor)


class _Collector:
    """Calls `fleet.refresh()` and `fleet.collect()` every `period` seconds in a thread."""

    def __init__(self, fleet: NodeFleet, period: float = COLLECT_S) -> None:
        self.fleet = fleet
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ray-collector", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.fleet.refresh()
                self.fleet.collect()
            except Exception as exc:  # noqa: BLE001 - keep collecting; the last problem is kept
                self.fleet.problems.append(f"collector: {_short(exc)}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


class RayJobHandler:
    """Carries out Evaluate and Expand jobs as Ray tasks; never writes results to the archive."""

    def __init__(self, *, run: Run, config: RunConfig, tasks: Mapping[str, Any], fleet: NodeFleet,
                 session_id: str, session_index: int = 0,
                 on_environment: Callable[[Any, Any], None] | None = None) -> None:
        self.run = run
        self.run_dir = Path(run.path)
        self.config = config
        self.tasks = tasks
        self.fleet = fleet
        self.session_id = session_id
        self.session_index = session_index
        self.on_environment = on_environment
        self.spec = SessionSpec(session_id, self.run_dir.name, json.dumps(config.frozen(), sort_keys=True),
                                tuple(tasks))
        self._options = {"num_cpus": 0, "resources": {config.ray.slot_resource: 1},
                         "max_retries": config.ray.max_retries, "retry_exceptions": False}
        self._evaluate = ray.remote(evaluate_job)
        self._expand = ray.remote(expand_job)
        self._lock = threading.Lock()
        self._agents: dict[int, AgentRef] = {}
        self._in_flight: dict[int, Any] = {}
        self._cancelled = False
        self.retried = 0
        self.overhead_s = 0.0  # evaluations: head round trip minus the evaluation's own time (benchmarks)

    def job_key(self, job: Job) -> str:
        return f"{self.session_id}-{job.id}"

    def job_cost(self, job: Job) -> tuple[float, int]:
        """Dollars and tokens of `job`'s calls the head has collected (all attempts)."""
        return self.fleet.spend(self.job_key(job))

    def cancel_all(self) -> None:
        """Cancel every job in flight (their tasks get KeyboardInterrupt and close their sandboxes)."""
        with self._lock:
            self._cancelled = True
            refs = list(self._in_flight.values())
        for ref in refs:
            try:
                ray.cancel(ref, recursive=True)
            except Exception:  # noqa: BLE001 - already finished
                pass

    def tags(self, job: Job, node_id: int, **extra: object) -> dict[str, object]:
        return {"run": self.run_dir.name, "node": node_id, **extra}

    def evaluate(self, job: Job) -> EvalRecord:
        action = job.action
        assert isinstance(action, Evaluate)
        rel = eval_dir(action.node_id, action.task_id, self.job_key(job))
        spec = EvalJob(self.spec, self.job_key(job), action.node_id, action.task_id, self._agent(action.node_id),
                       str(rel), self.tags(job, action.node_id, task=action.task_id, purpose="solve"))
        started = time.monotonic()
        result = self._run(job, self._evaluate, spec, f"eval node {action.node_id} on {action.task_id}")
        unpack_dir(result.files, self.run_dir / rel)
        if self.on_environment is not None:
            for task_id, environment in result.environments:
                self.on_environment(self.tasks[task_id], environment)
        record = result.record
        assert isinstance(record, EvalRecord)
        with self._lock:
            self.overhead_s += max(0.0, time.monotonic() - started - (record.total_s or 0.0))
        return record

    def expand(self, job: Job) -> ExpansionOutcome:
        action = job.action
        assert isinstance(action, Expand)
        parent = action.node_id
        rel = expansion_dir(parent, self.job_key(job))
        evals_tar, views = pack_eval_views(eval_views(self.run, parent))
        spec = ExpandJob(self.spec, self.job_key(job), parent, self._agent(parent), str(rel),
                         expansion_seed(self.config.seed, self.session_index, job), tuple(views), evals_tar,
                         self.tags(job, parent))
        result = self._run(job, self._expand, spec, f"expand node {parent}")
        work = unpack_dir(result.files, self.run_dir / rel)
        child = work / result.child_rel if result.child_rel else None
        return ExpansionOutcome(result.record, child, operator=result.operator,  # type: ignore[arg-type]
                                admission=result.admission, infra=result.infra)

    def _agent(self, node_id: int) -> AgentRef:
        """The version's bundle, put in the object store once per session (keyed by commit)."""
        with self._lock:
            known = self._agents.get(node_id)
            if known is not None:
                return known
            with tempfile.TemporaryDirectory(prefix="hgm-bundle-") as tmp:
                bundle = self.run.export(node_id, Path(tmp) / "agent.bundle", fmt="bundle").read_bytes()
            ref = AgentRef(self.run.commit_of(node_id), ray.put(bundle))
            self._agents[node_id] = ref
            return ref

    def _run(self, job: Job, remote: Any, spec: Any, what: str) -> JobResult:
        with self._lock:
            if self._cancelled:
                raise RuntimeError("the run is being abandoned; no new job")
            ref = remote.options(name=f"hgm {what}", **self._options).remote(spec)
            self._in_flight[job.id] = ref
        try:
            result: JobResult = ray.get(ref)
        except ray.exceptions.RayError as exc:
            raise RuntimeError(f"Ray job failed: {_short(exc)}") from None
        finally:
            with self._lock:
                self._in_flight.pop(job.id, None)
        self.fleet.ingest(result.calls)
        attempts = self.fleet.attempts(self.job_key(job)) | {result.attempt}
        if len(attempts) > 1:
            self.retried += 1
            self.run.log_event("job_retried", {"job": self.job_key(job), "what": what, "attempts": len(attempts),
                                               "node": result.node})
        return result


def _short(exc: BaseException) -> str:
    """One line about a Ray error: the original exception of a failed task when there is one."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0][:300]}" if text else exc.__class__.__name__


def start_ray_jobs(
    stack: ExitStack,
    *,
    run: Run,
    config: RunConfig,
    tasks: Mapping[str, Any],
    costs: CostBook,
    session_id: str,
    session_index: int,
    workers: int | None,
    on_environment: Callable[[Any, Any], None] | None = None,
    handler_factory: Callable[..., Any] | None = None,
) -> tuple[Any, str, int]:
    """Connect to the cluster, start a node service on every slot node; (handler, backend name, workers).

    Everything started is stopped by `stack`: collector, services, the connection.
    """
    settings = config.ray
    try:
        where, connected = ray_cluster.connect(settings.address, slot_resource=settings.slot_resource,
                                               local_slots=workers or config.workers)
    except ray_cluster.ClusterError as exc:
        raise RunSetupError(str(exc)) from None
    if connected:
        stack.callback(ray_cluster.disconnect)
    slots = ray_cluster.total_slots(settings.slot_resource)
    if slots < 1:
        raise RunSetupError(ray_cluster.no_slots_message(settings.slot_resource, where))
    gateway_config = run_gateway_config(config.model, api_base=config.api_base, run_usd=config.budget.usd,
                                        attempt_usd=config.agent.attempt_usd, seed=config.seed)
    fleet = NodeFleet(session_id, gateway_config, costs, settings.slot_resource, gateway_env(os.environ))
    stack.callback(lambda: fleet.problems and run.log_event("ray_problems", {"problems": list(fleet.problems)}))
    stack.callback(fleet.close)
    fleet.refresh()
    fleet.wait_ready()
    collector = _Collector(fleet)
    stack.callback(collector.stop)
    handler = (handler_factory or RayJobHandler)(
        run=run, config=config, tasks=tasks, fleet=fleet, session_id=session_id, session_index=session_index,
        on_environment=on_environment,
    )
    return handler, f"ray:{config.sandbox}", min(workers or slots, MAX_WORKERS)
