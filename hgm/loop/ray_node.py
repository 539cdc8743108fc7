"""The worker side of the Ray executor: what runs on a node that offers docker slots.

- `NodeService`, a Ray actor (one per node and session, placed there by the head): the
  node's LLM gateway on a local unix socket, so the node's sandboxes reach the model as
  they do with threads. It keeps each call's record until the head collects it
  (`exchange`, `take`), answers jobs' questions about their spend (`job`,
  `provider_failures`) and model access (`access`), and is told the run's spend so far,
  so that it refuses calls past the run's dollar cap. Provider keys reach it through its
  Ray runtime environment; nothing else on the node gets them, and no sandbox does.
- `evaluate_job` / `expand_job`, the bodies of the Ray tasks: they build the session's
  setup once per worker process (suite, sandbox backend, limits), check the agent
  version out of the node's cache (fetching its bundle from the head only on a miss),
  run the one evaluation path or one expansion in a scratch directory and return a
  `JobResult`: the record, the job's files packed, the call records not yet collected,
  and which attempt this was (Ray may run a job again when a worker or node is lost).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import random
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from archive.records import EvalRecord, ExpansionRecord
from sandbox.tracking import TrackingBackend

from hgm.config import RunConfig, config_from_frozen
from hgm.evaluation.evaluate import evaluate
from hgm.evolve.expand import expand
from hgm.evolve.lessons import EvalView
from hgm.gateway import GatewayConfig, start_gateway
from hgm.gateway.access import ModelAccess
from hgm.gateway.costs import CostBook
from hgm.gateway.records import CallRecord
from hgm.loop.ray_transfer import agent_tree, pack_dir, unpack_eval_views
from hgm.loop.session import eval_setup, expand_setup, open_suite

SERVICE_WAIT_S = 60.0  # a node that just joined gets its service within the head's next look
SESSION_LABEL = "hgm.session"  # on every sandbox a Ray job opens, so the node can clean up after lost workers


def service_name(session_id: str, node_id: str) -> str:
    return f"hgm-{session_id}-{node_id[:16]}"


class NodeService:
    """One node's gateway and call records for one session (a Ray actor; plain class for tests)."""

    def __init__(self, node_id: str, session_id: str, gateway_config: GatewayConfig,
                 run_spent: tuple[float, int]) -> None:
        self.node_id = node_id
        self.session_id = session_id
        self._lock = threading.Lock()
        self._pending: list[CallRecord] = []
        self._starts: list[tuple[str, str]] = []
        self._delivered = (0.0, 0)  # spend of the records handed to the head so far
        self._elsewhere = (0.0, 0)  # what the ledger was told the rest of the run spent
        self._costs = CostBook(self._keep)
        self._gateway = start_gateway(gateway_config, self._costs)
        self._sync(run_spent)

    def _keep(self, record: CallRecord) -> None:
        with self._lock:
            self._pending.append(record)

    def _sync(self, run_spent: tuple[float, int]) -> None:
        """Make the gateway's run-wide ledger read `run_spent` + what the head has not seen yet."""
        with self._lock:
            want = (run_spent[0] - self._delivered[0], run_spent[1] - self._delivered[1])
            delta = (want[0] - self._elsewhere[0], want[1] - self._elsewhere[1])
            self._elsewhere = want
        self._gateway.ledger.add({}, delta[1], delta[0])

    def _hand_over(self, records: list[CallRecord]) -> list[CallRecord]:
        cost = sum(float(r.cost or 0.0) for r in records)
        tokens = sum(r.prompt_tokens + r.completion_tokens for r in records)
        self._delivered = (self._delivered[0] + cost, self._delivered[1] + tokens)
        return records

    def endpoint(self) -> dict[str, Any]:
        """Where jobs on this node reach the gateway: its socket and its config (alias)."""
        return {"url": self._gateway.url, "config": self._gateway.config, "node": self.node_id}

    def access(self, tags: Mapping[str, object]) -> ModelAccess:
        return self._gateway.access(tags)

    def begin(self, job_key: str, attempt: str) -> None:
        """A job's attempt started on this node (the head learns of retries this way)."""
        with self._lock:
            self._starts.append((job_key, attempt))

    def job(self, key: str) -> tuple[float, int]:
        return self._costs.job(key)

    def provider_failures(self, key: str) -> list[str]:
        return self._costs.provider_failures(key)

    def take(self, attempt: str) -> list[CallRecord]:
        """The records of `attempt`'s calls not collected yet (they travel with its result)."""
        with self._lock:
            mine = [r for r in self._pending if r.tags.get("job") == attempt]
            self._pending = [r for r in self._pending if r.tags.get("job") != attempt]
            return self._hand_over(mine)

    def exchange(self, run_spent: tuple[float, int]) -> tuple[list[CallRecord], list[tuple[str, str]]]:
        """Learn the run's spend; hand over every record not collected yet, and the attempts begun."""
        self._sync(run_spent)
        with self._lock:
            records, starts = self._pending, self._starts
            self._pending, self._starts = [], []
            return self._hand_over(records), starts

    def close(self) -> list[CallRecord]:
        """Stop the gateway and remove the session's sandboxes left here; the records nobody collected yet."""
        self._gateway.close()
        remove_session_sandboxes(self.session_id)
        return self.exchange((self._delivered[0] + self._elsewhere[0], self._delivered[1] + self._elsewhere[1]))[0]


def remove_session_sandboxes(session_id: str) -> int:
    """Remove this node's containers of a session (a worker killed mid-job leaves its own)."""
    try:
        from sandbox.images import docker_client

        client = docker_client(timeout=10)
    except Exception:  # noqa: BLE001 - no engine here: nothing to remove
        return 0
    try:
        found = client.api.containers(all=True, filters={"label": [f"{SESSION_LABEL}={session_id}"]})
        for info in found:
            client.api.remove_container(info["Id"], force=True, v=True)
        return len(found)
    except Exception:  # noqa: BLE001 - best effort at the end of a session
        return 0
    finally:
        client.close()


# ---------------------------------------------------------------------------- task side

@dataclass(frozen=True)
class SessionSpec:
    """What every job of a session shares (hashable: a worker builds its setup once per session)."""

    session_id: str
    run_name: str
    config_json: str  # RunConfig.frozen() as JSON
    task_ids: tuple[str, ...]


@dataclass(frozen=True)
class AgentRef:
    """An agent version: its commit, and the head's object holding its bundle (fetched on a miss)."""

    commit: str
    bundle: Any  # ray.ObjectRef to bytes; not resolved by Ray when the job is sent


@dataclass(frozen=True)
class EvalJob:
    session: SessionSpec
    job_key: str
    node_id: int
    task_id: str
    agent: AgentRef
    out_rel: str  # the artifacts' directory relative to the run directory
    tags: Mapping[str, object]


@dataclass(frozen=True)
class ExpandJob:
    session: SessionSpec
    job_key: str
    parent_id: int
    agent: AgentRef
    work_rel: str
    rng_seed: str
    evals: tuple[EvalView, ...]  # paths relative to `evals_tar`
    evals_tar: bytes
    tags: Mapping[str, object]


@dataclass
class JobResult:
    """What a job sends back to the head."""

    record: EvalRecord | ExpansionRecord
    attempt: str  # the `job` tag of this attempt: "<job key>.<random>"
    node: str  # Ray node id
    files: bytes  # out_rel / work_rel, packed
    calls: list[CallRecord] = field(default_factory=list)
    environments: list[tuple[str, Any]] = field(default_factory=list)  # (task id, Environment)
    operator: str = "revise"
    infra: bool = False
    child_rel: str | None = None  # the accepted child's source, relative to work_rel
    admission: Any = None  # the gate's decision on the child (an AdmissionRecord), when one was made


@dataclass(frozen=True)
class _WorkerSetup:
    config: RunConfig
    suite: Any
    tasks: Mapping[str, Any]
    backend: Any


@functools.lru_cache(maxsize=4)
def _setup(spec: SessionSpec) -> _WorkerSetup:
    from sandbox import get_backend

    config = config_from_frozen(json.loads(spec.config_json))
    suite = open_suite(config)
    tasks = {t.instance_id: t for t in suite.select(list(spec.task_ids))}
    return _WorkerSetup(config, suite, tasks, get_backend(config.sandbox))


@dataclass(frozen=True)
class _NodeGateway:
    """The node service seen as the gateway `eval_setup`/`expand_setup` expect (access, url, config)."""

    service: Any
    url: str
    config: GatewayConfig

    def access(self, tags: Mapping[str, object]) -> ModelAccess:
        import ray

        return ray.get(self.service.access.remote(dict(tags)))


class _NodeCosts:
    """The node service seen as the cost book the evaluation path reads (job, provider_failures)."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def job(self, key: str) -> tuple[float, int]:
        import ray

        return ray.get(self.service.job.remote(key))

    def provider_failures(self, key: str) -> list[str]:
        import ray

        return ray.get(self.service.provider_failures.remote(key))


def _service(session_id: str, node_id: str) -> tuple[Any, _NodeGateway]:
    """This node's service, looked up for every job (the head replaces one that died)."""
    import ray

    name = service_name(session_id, node_id)
    deadline = time.monotonic() + SERVICE_WAIT_S
    while True:
        try:
            handle = ray.get_actor(name)
            break
        except ValueError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no hgm node service {name} on this node after {SERVICE_WAIT_S:g} s") from None
            time.sleep(0.5)
    endpoint = ray.get(handle.endpoint.remote())
    return handle, _NodeGateway(handle, endpoint["url"], endpoint["config"])


def _labelled(setup: Any, spec: SessionSpec) -> Any:
    """`setup` whose sandboxes also carry the session's label."""
    labels = (*setup.limits.labels, (SESSION_LABEL, spec.session_id))
    return dataclasses.replace(setup, limits=dataclasses.replace(setup.limits, labels=labels))


def _here(spec: SessionSpec) -> tuple[str, Any, _NodeGateway]:
    import ray

    node = ray.get_runtime_context().get_node_id()
    handle, gateway = _service(spec.session_id, node)
    return node, handle, gateway


def _agent(agent: AgentRef) -> Path:
    import ray

    return agent_tree(agent.commit, lambda: ray.get(agent.bundle))


def _begin(service: Any, job_key: str) -> str:
    attempt = f"{job_key}.{secrets.token_hex(3)}"
    service.begin.remote(job_key, attempt)
    return attempt


def _take(service: Any, attempt: str) -> list[CallRecord]:
    import ray

    return ray.get(service.take.remote(attempt))


@dataclass(frozen=True)
class _Attempt:
    """One attempt of a job on this node: the session's setup, the node's service, scratch space."""

    setup: _WorkerSetup
    node: str
    service: Any
    gateway: _NodeGateway
    key: str  # the `job` tag of this attempt
    agent_dir: Path
    backend: TrackingBackend
    root: Path  # scratch directory, named as the run (its sandboxes' hgm.run label)

    def result(self, record: Any, files: bytes, **extra: Any) -> JobResult:
        return JobResult(record, self.key, self.node, files, _take(self.service, self.key), **extra)


@contextlib.contextmanager
def _attempt(session: SessionSpec, job_key: str, agent: AgentRef) -> Iterator[_Attempt]:
    setup = _setup(session)
    node, service, gateway = _here(session)
    key = _begin(service, job_key)
    agent_dir = _agent(agent)
    backend = TrackingBackend(setup.backend)
    with tempfile.TemporaryDirectory(prefix="hgm-job-") as tmp:
        try:
            yield _Attempt(setup, node, service, gateway, key, agent_dir, backend, Path(tmp) / session.run_name)
        finally:
            backend.close_all()


def evaluate_job(job: EvalJob) -> JobResult:
    """A Ray task: one evaluation on this node (the one evaluation path, in a scratch directory)."""
    environments: list[tuple[str, Any]] = []
    with _attempt(job.session, job.job_key, job.agent) as at:
        setup = _labelled(eval_setup(at.setup.config, at.setup.suite, at.backend, at.gateway, _NodeCosts(at.service),
                                     at.root, lambda task, env: environments.append((task.instance_id, env))),
                          job.session)
        record = evaluate(setup, job.node_id, at.agent_dir, at.setup.tasks[job.task_id], at.root / job.out_rel,
                          {**job.tags, "job": at.key})
        return at.result(record, pack_dir(at.root / job.out_rel), environments=environments)


def expand_job(job: ExpandJob) -> JobResult:
    """A Ray task: one expansion on this node; the child's source comes back in the packed files."""
    with _attempt(job.session, job.job_key, job.agent) as at:
        views = unpack_eval_views(job.evals_tar, job.evals, at.root.parent / "parent-evals")
        work_dir = at.root / job.work_rel
        setup = _labelled(expand_setup(at.setup.config, at.setup.tasks, at.backend, at.gateway, job.session.run_name),
                          job.session)
        costs = _NodeCosts(at.service)
        outcome = expand(setup, job.parent_id, at.agent_dir, views, random.Random(job.rng_seed), work_dir,
                         {**job.tags, "job": at.key}, lambda: costs.job(at.key), lambda: costs.provider_failures(at.key))
        child = str(outcome.child_dir.relative_to(work_dir)) if outcome.child_dir is not None else None
        return at.result(outcome.record, pack_dir(work_dir), operator=outcome.operator, infra=outcome.infra,
                         child_rel=child, admission=outcome.admission)
