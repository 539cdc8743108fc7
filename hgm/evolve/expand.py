"""One expansion: lesson, diagnosis, self-improvement, and the record of what came of it.

`expand` picks a lesson from the parent's evaluations, asks the model (through the
gateway) for a diagnosis, runs the parent's agent on its own source, and returns an
`ExpansionOutcome`: the archive record and, when the child was accepted, its source.
It never writes to the archive; the loop records the outcome in one transaction.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from archive.records import ExpansionRecord
from evaluators.task import Task
from sandbox.api import Backend

from hgm.config import EvolveConfig
from hgm.evolve.context import clip, grading_report, read_text, render_trajectory, source_excerpt
from hgm.evolve.diagnose import PURPOSE as DIAGNOSE_PURPOSE
from hgm.evolve.diagnose import ChatFn, DiagnosisContext, diagnose
from hgm.evolve.improve import ImproveError, ImproveLimits, self_improve
from hgm.evolve.lessons import EvalView, Lesson, pick_lesson
from hgm.gateway.chat import ChatReply, chat
from hgm.gateway.access import ModelAccess
from hgm.gateway.records import PROVIDER_FAILED


@dataclass
class ExpansionOutcome:
    """What an expansion produced: the record, and the child's source when accepted."""

    record: ExpansionRecord
    child_dir: Path | None = None
    operator: str = "self_improve"
    infra: bool = False  # not the agent's doing (e.g. the model provider failed): not a failed expansion


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
    """
    started = time.time()
    lesson = pick_lesson(list(evals), rng)
    work_dir.mkdir(parents=True, exist_ok=True)
    chat_fn = _chat_fn(setup, {**tags, "purpose": DIAGNOSE_PURPOSE})
    diagnosis = diagnose(diagnosis_context(setup, lesson, parent_dir), chat_fn, setup.evolve.diagnose_retries)
    (work_dir / "diagnosis.json").write_text(diagnosis.summary(), encoding="utf-8")
    clean_parent = work_dir / "parent"
    shutil.copytree(parent_dir, clean_parent, ignore=shutil.ignore_patterns(".complete", "__pycache__", "*.pyc"))
    access = setup.access({**tags, "purpose": "improve"})
    try:
        result = self_improve(setup.backend, clean_parent, diagnosis.problem, access, setup.limits, work_dir)
        accepted, reason, child = result.accepted, result.reason, result.child_dir
    except ImproveError as exc:
        accepted, reason, child = False, f"preparation failed: {exc}", None
    except Exception as exc:  # noqa: BLE001 - sandbox/infra failure: a failed expansion with its reason
        accepted, reason, child = False, f"sandbox failed: {exc.__class__.__name__}: {exc}", None
    finally:
        shutil.rmtree(clean_parent, ignore_errors=True)
    if diagnosis.fell_back and reason:
        reason = f"{reason} (diagnosis fell back to the lesson's default text)"
    dollars, tokens = cost()
    failures = provider_failures()
    if failures:
        accepted, reason = False, f"{PROVIDER_FAILED}: {failures[-1]}"[:2000]
    record = ExpansionRecord(
        parent_id,
        "ok" if accepted else ("abandoned" if failures else "failed"),
        reason="" if accepted else (reason or "rejected"),
        cost_usd=dollars,
        tokens=tokens,
        started=started,
        lesson=lesson.label(),
        diagnosis=diagnosis.summary(),
    )
    return ExpansionOutcome(record, child if accepted else None, infra=bool(failures))


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
        test_patch=clip(task.test_patch, budget // 4) if (task and evolve.include_test_patch) else "",
    )


def _chat_fn(setup: ExpandSetup, tags: Mapping[str, object]) -> ChatFn:
    def call(messages: Any) -> ChatReply:
        return chat(setup.gateway_url, setup.alias, messages, tags,
                    max_tokens=setup.evolve.diagnose_max_tokens, timeout=setup.diagnose_timeout_s)

    return call
