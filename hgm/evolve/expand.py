"""One expansion: lesson, diagnosis, self-improvement, and the record of what came of it.

`expand` picks a lesson from the parent's evaluations, asks the model (through the
gateway) for a diagnosis, runs the parent's agent on its own source, and returns an
`ExpansionOutcome`: the archive record, the gate's decision as a ledger record (when a
child was made), the memory items it was shown and distilled (`hgm.evolve.memory`) and,
when the child was accepted, its source. Text bound for the archive
or the run directory is redacted first. It never writes to the archive; the loop records
the outcome in one transaction.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from archive.memory import ExpansionMemory, MemoryItem
from archive.records import AdmissionRecord, ExpansionRecord
from evaluators.canary import canary_for, marked
from evaluators.task import Task
from sandbox.api import Backend

from hgm.config import EvolveConfig
from hgm.evolve.context import clip, grading_report, read_text, render_trajectory, source_excerpt
from hgm.evolve.diagnose import PURPOSE as DIAGNOSE_PURPOSE
from hgm.evolve.diagnose import ChatFn, Diagnosis, DiagnosisContext, diagnose
from hgm.evolve.gate import GateSettings, Verdict
from hgm.evolve.improve import ImproveError, ImproveLimits, ImproveResult, self_improve
from hgm.evolve.lessons import EvalView, Lesson, pick_lesson
from hgm.evolve.llm_client import ChatReply, chat
from hgm.evolve.memory import RunMemory
from hgm.gateway.access import ModelAccess
from hgm.gateway.records import PROVIDER_FAILED
from hgm.gateway.redact import Redactor

OPERATOR = "self_improve"


@dataclass
class ExpansionOutcome:
    """What an expansion produced: the record, and the child's source when accepted."""

    record: ExpansionRecord
    child_dir: Path | None = None
    operator: str = OPERATOR
    admission: AdmissionRecord | None = None  # the gate's decision, when a child was made
    infra: bool = False  # not the agent's doing (e.g. the model provider failed): not a failed expansion
    memory: ExpansionMemory | None = None  # memory items it produced and was shown (stored with it)


@dataclass(frozen=True)
class ExpandSetup:
    """What every expansion of a run shares."""

    backend: Backend
    access: Callable[[Mapping[str, object]], ModelAccess]  # the gateway's `access`
    gateway_url: str
    alias: str
    model: str  # the run's model spec (sizes the diagnosis excerpts)
    tasks: Mapping[str, Task]
    evolve: EvolveConfig
    limits: ImproveLimits
    diagnose_timeout_s: float = 600.0
    gate: GateSettings = field(default_factory=GateSettings)
    redact: Callable[[str], str] = field(default_factory=Redactor.from_environ)
    memory: RunMemory | None = None  # the run's lessons memory (None: off)
    improve: Callable[..., ImproveResult] = self_improve  # what makes and judges the child (benchmarks swap it)


def expand(
    setup: ExpandSetup,
    parent_id: int,
    parent_dir: Path,
    evals: Sequence[EvalView],
    rng: random.Random,
    work_dir: Path,
    tags: Mapping[str, object],
    cost: Callable[[], tuple[float, int]],
    provider_failures: Callable[[], list[str]] = list,
) -> ExpansionOutcome:
    """Try to make a child of `parent_id` (source in `parent_dir`).

    `cost()` reads the job's spend so far; `provider_failures()` the messages of its model
    calls that failed for the provider's reasons (any makes the attempt an infra outcome).
    With a memory (`setup.memory`), the diagnosis is shown the most relevant earlier items
    and the decided expansion is distilled into a new one (both in the outcome's `memory`).
    """
    started = time.time()
    lesson = pick_lesson(list(evals), rng)
    work_dir.mkdir(parents=True, exist_ok=True)
    chat_fn = _chat_fn(setup, {**tags, "purpose": DIAGNOSE_PURPOSE})
    ctx = diagnosis_context(setup, lesson, parent_dir)
    recalled = _recall(setup.memory, ctx, parent_id)
    if recalled:
        ctx = dataclasses.replace(ctx, memory=setup.memory.render(recalled))  # type: ignore[union-attr]
    diagnosis = diagnose(ctx, chat_fn, setup.evolve.diagnose_retries)
    summary = setup.redact(diagnosis.summary())
    (work_dir / "diagnosis.json").write_text(summary, encoding="utf-8")
    clean_parent = work_dir / "parent"
    shutil.copytree(parent_dir, clean_parent, ignore=shutil.ignore_patterns(".complete", "__pycache__", "*.pyc"))
    access = setup.access({**tags, "purpose": "improve"})
    result: ImproveResult | None = None
    try:
        result = setup.improve(setup.backend, clean_parent, diagnosis.problem, access, setup.limits, work_dir,
                               gate=setup.gate, redact=setup.redact)
        accepted, reason, child = result.accepted, result.reason, result.child_dir
    except ImproveError as exc:
        accepted, reason, child = False, f"preparation failed: {exc}", None
    except Exception as exc:  # noqa: BLE001 - sandbox/infra failure: a failed expansion with its reason
        accepted, reason, child = False, f"sandbox failed: {exc.__class__.__name__}: {exc}", None
    finally:
        shutil.rmtree(clean_parent, ignore_errors=True)
    if diagnosis.fell_back and reason:
        reason = f"{reason} (diagnosis fell back to the lesson's default text)"
    failures = provider_failures()
    if failures:
        accepted, reason = False, f"{PROVIDER_FAILED}: {failures[-1]}"[:2000]
    admission = None
    if result is not None and result.verdict is not None and not failures:  # an infra outcome decides nothing
        producer = {"operator": OPERATOR, "model": setup.model, "lesson": lesson.label(),
                    "agent_exit": result.agent_result.get("exit_reason"), "diagnosis_fell_back": diagnosis.fell_back,
                    **{k: str(tags[k]) for k in ("run", "job") if k in tags}}
        admission = admission_record(parent_id, result.verdict, producer, setup.redact)
    produced = None
    if setup.memory is not None and result is not None and not failures:  # distilled before the cost is read
        produced = _distill_decided(setup.memory, parent_id, lesson, diagnosis, accepted, reason or "", admission,
                                    result, tags)
    dollars, tokens = cost()
    record = ExpansionRecord(
        parent_id,
        "ok" if accepted else ("abandoned" if failures else "failed"),
        reason="" if accepted else setup.redact(reason or "rejected"),
        cost_usd=dollars,
        tokens=tokens,
        started=started,
        lesson=lesson.label(),
        diagnosis=summary,
    )
    memory = None
    if setup.memory is not None:
        memory = ExpansionMemory((produced,) if produced is not None else (), tuple(recalled))
    return ExpansionOutcome(record, child if accepted else None, admission=admission, infra=bool(failures),
                            memory=memory)


def _recall(memory: RunMemory | None, ctx: DiagnosisContext, parent_id: int) -> list[MemoryItem]:
    """The memory items for this diagnosis; a memory that cannot be read costs the expansion nothing."""
    if memory is None:
        return []
    try:
        return memory.recall(ctx, parent_id)
    except Exception as exc:  # noqa: BLE001 - the archive or bank refused a read
        memory.errors.append(f"memory recall failed: {exc.__class__.__name__}: {exc}")
        return []


def _distill_decided(memory: RunMemory, parent_id: int, lesson: Lesson, diagnosis: Diagnosis, accepted: bool,
                     reason: str, admission: AdmissionRecord | None, result: ImproveResult,
                     tags: Mapping[str, object]) -> MemoryItem | None:
    """The item of this decided expansion (None when nothing was decided or distillation broke)."""
    try:
        return memory.decided(parent_id, lesson.label(), diagnosis, accepted=accepted, reason=reason,
                              verdict_checks=admission.checks if admission is not None else None,
                              diff=result.diff, diff_sha256=admission.diff_sha256 if admission is not None else "",
                              tags=tags)
    except Exception as exc:  # noqa: BLE001 - a memory item is never worth losing the expansion
        memory.errors.append(f"memory distillation failed: {exc.__class__.__name__}: {exc}")
        return None


def admission_record(parent_id: int, verdict: Verdict, producer: Mapping[str, Any],
                     redact: Callable[[str], str] = str) -> AdmissionRecord:
    """The ledger row of the gate's `verdict` on a child of `parent_id`."""
    checks = tuple({**c.to_dict(), "reason": redact(c.reason), "details": [redact(d) for d in c.details]}
                   for c in verdict.checks)
    return AdmissionRecord(parent_id, "accepted" if verdict.accepted else "rejected",
                           diff_sha256=verdict.diff_sha256, child_digest=verdict.child_digest,
                           reason=redact(verdict.reason), checks=checks, producer=dict(producer))


def diagnosis_context(setup: ExpandSetup, lesson: Lesson, parent_dir: Path) -> DiagnosisContext:
    """What the diagnosis may see of `lesson`, cut to the run's excerpt budgets."""
    evolve = setup.evolve
    budget, source_chars = evolve.budgets(setup.model)
    source = source_excerpt(parent_dir, source_chars)
    ev = lesson.evaluation
    if lesson.kind != "failed_task" or ev is None:
        return DiagnosisContext(lesson, agent_source=source)
    task = setup.tasks.get(ev.task_id)
    art = Path(ev.trajectory_path).parent if ev.trajectory_path else None
    report: Any = {}
    if art is not None and (art / "report.json").is_file():
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
        # hidden test material carries the task's canary: if it ever reaches an agent, it shows
        test_patch=clip(marked(task.test_patch, canary_for(task)), budget // 4)
        if (task and evolve.include_test_patch) else "",
    )


def _chat_fn(setup: ExpandSetup, tags: Mapping[str, object]) -> ChatFn:
    def call(messages: Any) -> ChatReply:
        return chat(setup.gateway_url, setup.alias, messages, tags,
                    max_tokens=setup.evolve.diagnose_max_tokens, timeout=setup.diagnose_timeout_s)

    return call
