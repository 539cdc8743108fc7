"""How the real loop carries out jobs: sandboxes, the gateway, checkouts and cost books.

- `CostBook`: the gateway's recorder. Every call is stored in the archive (`llm_calls`)
  and summed per job (tag `job`) and per run, so an evaluation or expansion is recorded
  with what it cost.
- `TrackingBackend`: a sandbox backend wrapper that can close every open session at
  once (abandoning work on a second Ctrl-C).
- `CheckoutCache`: each agent version's source checked out once per run session.
- `SandboxJobRunner`: Evaluate = `hgm.loop.task_eval.run_task`; Expand = lesson,
  diagnosis and self-improvement from `hgm.evolve`.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from archive.records import EvalRecord, ExpansionRecord
from archive.run import Run
from evaluators.suite import Suite
from evaluators.task import Task
from sandbox.api import Backend, Mount, SandboxSpec, Session

from hgm.config import RunConfig
from hgm.evolve.context import clip, grading_report, read_text, render_trajectory, source_excerpt
from hgm.evolve.diagnose import PURPOSE as DIAGNOSE_PURPOSE
from hgm.evolve.diagnose import Diagnosis, DiagnosisContext, diagnose
from hgm.evolve.improve import ImproveError, ImproveLimits, SandboxLLM, self_improve
from hgm.evolve.lessons import EvalView, Lesson, pick_lesson
from hgm.evolve.llm_client import ChatReply, chat
from hgm.loop.executor import ExpansionOutcome
from hgm.loop.scheduler import Job
from hgm.loop.task_eval import SolveLimits, run_task
from hgm.policies.base import Evaluate, Expand

GATEWAY_MOUNT = "/hgm-gateway"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class CostBook:
    """Gateway recorder: stores each call in the archive and sums cost per job and run."""

    def __init__(self, run: Run, archive_lock: threading.RLock, preload: tuple[float, int] = (0.0, 0)) -> None:
        self._run = run
        self._archive_lock = archive_lock
        self._lock = threading.Lock()
        self._by_job: dict[str, list[float]] = {}
        self.cost, self.tokens = preload
        self.errors = 0

    def __call__(self, record: Any) -> None:
        tags: Mapping[str, str] = getattr(record, "tags", {}) or {}
        tokens = int(getattr(record, "prompt_tokens", 0)) + int(getattr(record, "completion_tokens", 0))
        cost = float(getattr(record, "cost", 0.0) or 0.0)
        with self._lock:
            self.cost += cost
            self.tokens += tokens
            if tags.get("job"):
                acc = self._by_job.setdefault(tags["job"], [0.0, 0])
                acc[0] += cost
                acc[1] += tokens
        node = tags.get("node")
        try:
            with self._archive_lock:
                self._run.record_llm_call(
                    model=str(getattr(record, "model", "")),
                    purpose=tags.get("purpose", ""),
                    node_id=int(node) if node is not None and str(node).isdigit() else None,
                    task_id=tags.get("task"),
                    prompt_tokens=int(getattr(record, "prompt_tokens", 0)),
                    completion_tokens=int(getattr(record, "completion_tokens", 0)),
                    cost_usd=cost,
                    latency_s=getattr(record, "latency_s", None),
                    error=getattr(record, "error", None),
                    at=getattr(record, "started_at", None),
                )
        except Exception:  # noqa: BLE001 - the archive may be closing; the totals still count
            self.errors += 1

    def job(self, key: str) -> tuple[float, int]:
        with self._lock:
            cost, tokens = self._by_job.get(key, (0.0, 0))
            return float(cost), int(tokens)

    def totals(self) -> tuple[float, int]:
        with self._lock:
            return self.cost, self.tokens


class _TrackedSession:
    def __init__(self, inner: Session, owner: "TrackingBackend") -> None:
        self._inner = inner
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._owner._forget(self)

    def __enter__(self) -> "_TrackedSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TrackingBackend:
    """A backend whose open sessions can all be closed at once (`close_all`)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "backend")
        self._lock = threading.Lock()
        self._open: set[_TrackedSession] = set()
        self._cancelled = False

    def open(self, spec: SandboxSpec) -> _TrackedSession:
        if self._cancelled:
            from sandbox.api import SandboxError

            raise SandboxError("the run is being abandoned; no new sandbox")
        session = _TrackedSession(self.inner.open(spec), self)
        with self._lock:
            self._open.add(session)
        return session

    def _forget(self, session: _TrackedSession) -> None:
        with self._lock:
            self._open.discard(session)

    def close_all(self) -> None:
        self._cancelled = True
        with self._lock:
            sessions = list(self._open)
        for session in sessions:
            try:
                session.close()
            except Exception:  # noqa: BLE001 - best effort while abandoning
                pass


class CheckoutCache:
    """Source trees of agent versions, checked out once under `root/<node id>`."""

    def __init__(self, run: Run, root: Path, archive_lock: threading.RLock) -> None:
        self.run = run
        self.root = root
        self.archive_lock = archive_lock
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, node_id: int) -> Path:
        with self._guard:
            lock = self._locks.setdefault(node_id, threading.Lock())
        dest = self.root / str(node_id)
        with lock:
            if not (dest / ".complete").exists():
                shutil.rmtree(dest, ignore_errors=True)
                with self.archive_lock:
                    self.run.checkout(node_id, dest)
                (dest / ".complete").write_text("")
        return dest


def copy_without_marker(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".complete", "__pycache__", "*.pyc"))


@dataclass
class LLMAccess:
    """Builds what a sandbox needs to reach the gateway, per backend kind.

    Docker: the socket's directory is mounted at GATEWAY_MOUNT and the container gets a
    container PATH and HOME=/tmp. Local: the host socket path, nothing else of the host.
    """

    socket_path: str
    alias: str
    backend_name: str

    def for_sandbox(self, tags: Mapping[str, object]) -> SandboxLLM:
        import json

        env = {
            "HGM_LLM_MODEL": self.alias,
            "HGM_LLM_TAGS": json.dumps({k: str(v) for k, v in tags.items()}, sort_keys=True),
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
        }
        if self.backend_name == "docker":
            socket = Path(self.socket_path)
            env.update(HGM_LLM_URL=f"{GATEWAY_MOUNT}/{socket.name}", PATH=CONTAINER_PATH, HOME="/tmp")
            return SandboxLLM(env=env, mounts=(Mount(str(socket.parent), GATEWAY_MOUNT, read_only=True),))
        env["HGM_LLM_URL"] = self.socket_path
        return SandboxLLM(env=env)


def rel(run_dir: Path, path: Path | None) -> str | None:
    """A path relative to the run directory when it lies inside it (portable archives)."""
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path)


class SandboxJobRunner:
    """Carries out Evaluate and Expand jobs for the real loop."""

    def __init__(
        self,
        *,
        run: Run,
        config: RunConfig,
        suite: Suite,
        tasks: Mapping[str, Task],
        backend: TrackingBackend,
        llm: LLMAccess,
        gateway_url: str,
        costs: CostBook,
        archive_lock: threading.RLock,
        session_id: str,
        session_index: int = 0,
    ) -> None:
        self.run = run
        self.run_dir = Path(run.path)
        self.config = config
        self.suite = suite
        self.tasks = dict(tasks)
        self.backend = backend
        self.llm = llm
        self.gateway_url = gateway_url
        self.costs = costs
        self.archive_lock = archive_lock
        self.session_id = session_id
        self.session_index = session_index
        self.timings: list[dict[str, float]] = []  # per evaluation, for benchmarks
        self._timings_lock = threading.Lock()
        self.checkouts = CheckoutCache(run, self.run_dir / "work" / "agents", archive_lock)
        self.solve_limits = SolveLimits(
            max_steps=config.agent.solve_step_limit,
            solve_timeout_s=config.agent.solve_timeout_s,
            test_timeout_s=config.agent.test_timeout_s,
            labels=(("hgm.run", self.run_dir.name),),
        )
        self.improve_limits = ImproveLimits(
            improve_timeout_s=config.agent.improve_timeout_s,
            test_timeout_s=config.agent.test_timeout_s,
            max_steps=config.agent.improve_step_limit,
            labels=(("hgm.run", self.run_dir.name),),
        )

    # ------------------------------------------------------------------ helpers
    def job_key(self, job: Job) -> str:
        return f"{self.session_id}-{job.id}"

    def job_cost(self, job: Job) -> tuple[float, int]:
        return self.costs.job(self.job_key(job))

    def cancel_all(self) -> None:
        self.backend.close_all()

    def _tags(self, job: Job, **extra: object) -> dict[str, object]:
        return {"run": self.run_dir.name, "job": self.job_key(job), **extra}

    # ------------------------------------------------------------------ evaluate
    def evaluate(self, job: Job) -> EvalRecord:
        action = job.action
        assert isinstance(action, Evaluate)
        started = time.time()
        t0 = time.monotonic()
        task = self.tasks[action.task_id]
        agent_dir = self.checkouts.get(action.node_id)
        out_dir = self.run_dir / "evals" / f"node{action.node_id}" / f"{_safe(action.task_id)}-{self.job_key(job)}"
        tags = self._tags(job, node=action.node_id, task=action.task_id, purpose="solve")
        result = run_task(self.backend, self.suite, task, agent_dir, self.llm.for_sandbox(tags), out_dir, self.solve_limits)
        cost, tokens = self.job_cost(job)
        total = time.monotonic() - t0
        detail = result.detail
        with self._timings_lock:
            self.timings.append({"sandbox_s": result.sandbox_s, "agent_s": result.agent_s,
                                 "grade_s": result.grade_s, "total_s": total})
        return EvalRecord(
            action.node_id,
            action.task_id,
            result.status,
            started=started,
            agent_s=result.agent_s,
            grade_s=result.grade_s,
            total_s=total,
            tokens=tokens or result.tokens,
            cost_usd=cost,
            trajectory_path=rel(self.run_dir, result.trajectory_path),
            log_path=rel(self.run_dir, result.log_path),
            detail=detail,
        )

    # ------------------------------------------------------------------ expand
    def eval_views(self, node_id: int) -> list[EvalView]:
        with self.archive_lock:
            rows = self.run.evaluations(node_id)
        views = []
        for row in rows:
            views.append(EvalView(
                task_id=row["task_id"], status=row["status"], detail=row.get("detail") or "",
                trajectory_path=self._abs(row.get("trajectory_path")), log_path=self._abs(row.get("log_path")),
            ))
        return views

    def _abs(self, path: str | None) -> str | None:
        if not path:
            return None
        p = Path(path)
        return str(p if p.is_absolute() else self.run_dir / p)

    def diagnosis_context(self, lesson: Lesson, parent_dir: Path) -> DiagnosisContext:
        evolve = self.config.evolve
        budget, source_chars = evolve.budgets(self.config.model)
        source = source_excerpt(parent_dir, source_chars)
        ev = lesson.evaluation
        if lesson.kind != "failed_task" or ev is None:
            return DiagnosisContext(lesson, agent_source=source)
        task = self.tasks.get(ev.task_id)
        art = Path(ev.trajectory_path).parent if ev.trajectory_path else None
        report: Any = {}
        if art is not None and (art / "report.json").is_file():
            import json

            try:
                report = json.loads(read_text(art / "report.json")).get("report", {})
            except (ValueError, AttributeError):
                report = {}
        log = read_text(art / "test.log") if art is not None else ""
        return DiagnosisContext(
            lesson,
            agent_source=source,
            problem_statement=clip(task.problem_statement, budget // 4) if task else "",
            trajectory=render_trajectory(ev.trajectory_path, budget // 2),
            patch=clip(read_text(art / "patch.diff"), budget // 4) if art is not None else "",
            grading_report=grading_report(report, log, ev.detail, budget // 4),
            test_patch=clip(task.test_patch, budget // 4) if (task and evolve.include_test_patch) else "",
        )

    def _chat_fn(self, job: Job, parent_id: int) -> Callable[[list[dict[str, str]]], ChatReply]:
        tags = self._tags(job, node=parent_id, purpose=DIAGNOSE_PURPOSE)

        def call(messages: Any) -> ChatReply:
            return chat(self.gateway_url, self.llm.alias, messages, tags,
                        max_tokens=self.config.evolve.diagnose_max_tokens,
                        timeout=self.config.agent.improve_timeout_s)

        return call

    def expand(self, job: Job) -> ExpansionOutcome:
        action = job.action
        assert isinstance(action, Expand)
        parent_id = action.node_id
        started = time.time()
        # seeded by run seed, session number and job number: a rerun with the same seed repeats
        rng = random.Random(f"{self.config.seed}-{self.session_index}-{job.id}")
        parent_dir = self.checkouts.get(parent_id)
        lesson = pick_lesson(self.eval_views(parent_id), rng)
        work_dir = self.run_dir / "expansions" / f"node{parent_id}-{self.job_key(job)}"
        work_dir.mkdir(parents=True, exist_ok=True)
        diagnosis: Diagnosis = diagnose(
            self.diagnosis_context(lesson, parent_dir), self._chat_fn(job, parent_id), self.config.evolve.diagnose_retries
        )
        (work_dir / "diagnosis.json").write_text(diagnosis.summary(), encoding="utf-8")
        clean_parent = work_dir / "parent"
        copy_without_marker(parent_dir, clean_parent)
        tags = self._tags(job, node=parent_id, purpose="improve")
        try:
            result = self_improve(self.backend, clean_parent, diagnosis.problem, self.llm.for_sandbox(tags),
                                  self.improve_limits, work_dir)
            accepted, reason, child = result.accepted, result.reason, result.child_dir
        except ImproveError as exc:
            accepted, reason, child = False, f"preparation failed: {exc}", None
        except Exception as exc:  # noqa: BLE001 - sandbox/infra failure: a failed expansion with its reason
            accepted, reason, child = False, f"sandbox failed: {exc.__class__.__name__}: {exc}", None
        finally:
            shutil.rmtree(clean_parent, ignore_errors=True)
        cost, tokens = self.job_cost(job)
        diag_text = diagnosis.summary()
        if diagnosis.fell_back:
            reason = reason and f"{reason} (diagnosis fell back to the lesson's default text)"
        record = ExpansionRecord(
            parent_id,
            "ok" if accepted else "failed",
            reason="" if accepted else (reason or "rejected"),
            cost_usd=cost,
            tokens=tokens,
            started=started,
            lesson=lesson.label(),
            diagnosis=diag_text,
        )
        return ExpansionOutcome(record, child if accepted else None)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]
