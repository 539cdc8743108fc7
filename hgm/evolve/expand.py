"""One expansion: operator, problem, self-improvement, and the record of what came of it.

`expand` draws an operator from the run's mix (`hgm.evolve.operators`). For `revise`
(the default) it picks a lesson from the parent's evaluations and asks the model (through
the gateway) for a diagnosis; `recombine` merges the parent with a strong version outside
its lineage and `refine` polishes it with its own trajectories, each with a problem built
from the archive. Then the parent's agent runs on its own source (for recombine: the
merge) and the child goes through the one acceptance (`self_improve`, whose admission gate
decides). It returns an `ExpansionOutcome`: the archive record, the gate's decision as a
ledger record (when a child was made), the memory items it was shown and distilled
(`hgm.evolve.memory`) and, when the child was accepted, its source. Text
bound for the archive or the run directory is redacted first. It never writes to the
archive; the loop records the outcome in one transaction.
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
from hgm.evolve.diagnose import SCHEMA as DIAGNOSIS_SCHEMA
from hgm.evolve.diagnose import ChatFn, Diagnosis, DiagnosisContext, diagnose
from hgm.evolve.gate import GateSettings, Verdict
from hgm.evolve.improve import ImproveError, ImproveLimits, ImproveResult, self_improve
from hgm.evolve.lessons import EvalView, Lesson, pick_lesson
from hgm.evolve.memory import RunMemory
from hgm.evolve.merge import merge_sources, unresolved
from hgm.evolve.operators import Peers, choose_operator, common_ancestor, pick_partner, recombine_problem, refine_problem
from hgm.gateway.chat import ChatReply, chat, json_format
from hgm.gateway.access import ModelAccess
from hgm.gateway.records import PROVIDER_FAILED
from hgm.gateway.redact import Redactor



@dataclass
class ExpansionOutcome:
    """What an expansion produced: the record, and the child's source when accepted."""

    record: ExpansionRecord
    child_dir: Path | None = None
    operator: str = "revise"
    admission: AdmissionRecord | None = None  # the gate's decision, when a child was made
    infra: bool = False  # not the agent's doing (e.g. the model provider failed): not a failed expansion
    memory: ExpansionMemory | None = None  # memory items it produced and was shown (stored with it)


@dataclass(frozen=True)
class Plan:
    """What the improve agent gets: its problem, the files it starts from, how it came about."""

    operator: str
    problem: str
    lesson: str  # the archive's lesson label
    notes: dict[str, Any]  # stored (as JSON) in the archive's diagnosis column
    start_dir: Path | None = None
    second_parent: int | None = None
    conflicts: tuple[str, ...] = ()
    fell_back: bool = False  # the diagnosis used its fixed fallback text
    diagnosis: Diagnosis | None = None  # revise: the diagnosis that wrote the problem
    recalled: tuple[MemoryItem, ...] = ()  # revise: the memory items its diagnosis was shown


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
    peers: Peers | None = None,
) -> ExpansionOutcome:
    """Try to make a child of `parent_id` (source in `parent_dir`).

    `cost()` reads the job's spend so far; `provider_failures()` the messages of its model
    calls that failed for the provider's reasons (any makes the attempt an infra outcome).
    `peers` lets recombine read the other versions (without it, recombine revises instead).
    Every call of the expansion carries `attempt=<job>` (the gateway's per-attempt cap).
    With a memory (`setup.memory`), a revise diagnosis is shown the most relevant earlier items
    and the decided expansion is distilled into a new one (both in the outcome's `memory`).
    """
    started = time.time()
    work_dir.mkdir(parents=True, exist_ok=True)
    tags = {**tags, "attempt": tags.get("attempt") or tags.get("job", "")}
    plan = _plan(setup, parent_id, parent_dir, evals, rng, work_dir, tags, peers)
    notes = setup.redact(json.dumps(plan.notes, ensure_ascii=False))
    (work_dir / "diagnosis.json").write_text(notes, encoding="utf-8")
    clean_parent = work_dir / "parent"
    shutil.copytree(parent_dir, clean_parent, ignore=shutil.ignore_patterns(".complete", "__pycache__", "*.pyc"))
    access = setup.access({**tags, "purpose": "improve"})
    result: ImproveResult | None = None
    try:
        result = setup.improve(setup.backend, clean_parent, plan.problem, access, setup.limits, work_dir,
                               gate=setup.gate, redact=setup.redact, start_dir=plan.start_dir)
        accepted, reason, child = result.accepted, result.reason, result.child_dir
        left = unresolved(child, plan.conflicts) if accepted and child is not None else []
        if left:  # a recombination must resolve its merge, whatever the tests say
            accepted, reason = False, f"merge conflicts left unresolved in {', '.join(left)}"
    except ImproveError as exc:
        accepted, reason, child = False, f"preparation failed: {exc}", None
    except Exception as exc:  # noqa: BLE001 - sandbox/infra failure: a failed expansion with its reason
        accepted, reason, child = False, f"sandbox failed: {exc.__class__.__name__}: {exc}", None
    finally:
        shutil.rmtree(clean_parent, ignore_errors=True)
    if plan.fell_back and reason:
        reason = f"{reason} (diagnosis fell back to the lesson's default text)"
    failures = provider_failures()
    if failures:
        accepted, reason = False, f"{PROVIDER_FAILED}: {failures[-1]}"[:2000]
    admission = None
    if result is not None and result.verdict is not None and not failures:  # an infra outcome decides nothing
        producer = {"operator": plan.operator, "model": setup.model, "lesson": plan.lesson,
                    "agent_exit": result.agent_result.get("exit_reason"), "diagnosis_fell_back": plan.fell_back,
                    **{k: str(tags[k]) for k in ("run", "job") if k in tags}}
        extra = () if accepted or not result.accepted else (
            {"name": "merge_resolved", "verdict": "fail", "reason": reason, "details": []},)
        admission = admission_record(parent_id, result.verdict, producer, setup.redact, accepted, extra)
    produced = None
    if setup.memory is not None and result is not None and not failures:  # distilled before the cost is read
        produced = _distill_decided(setup.memory, parent_id, plan, accepted, reason or "", admission, result, tags)
    dollars, tokens = cost()
    record = ExpansionRecord(
        parent_id,
        "ok" if accepted else ("abandoned" if failures else "failed"),
        reason="" if accepted else setup.redact(reason or "rejected"),
        cost_usd=dollars,
        tokens=tokens,
        started=started,
        lesson=plan.lesson,
        diagnosis=notes,
        operator=plan.operator,
        second_parent_id=plan.second_parent,
    )
    memory = None
    if setup.memory is not None:
        memory = ExpansionMemory((produced,) if produced is not None else (), plan.recalled)
    return ExpansionOutcome(record, child if accepted else None, operator=plan.operator, admission=admission,
                            infra=bool(failures), memory=memory)


def _recall(memory: RunMemory | None, ctx: DiagnosisContext, parent_id: int) -> list[MemoryItem]:
    """The memory items for this diagnosis; a memory that cannot be read costs the expansion nothing."""
    if memory is None:
        return []
    try:
        return memory.recall(ctx, parent_id)
    except Exception as exc:  # noqa: BLE001 - the archive or bank refused a read
        memory.errors.append(f"memory recall failed: {exc.__class__.__name__}: {exc}")
        return []


def _distill_decided(memory: RunMemory, parent_id: int, plan: Plan, accepted: bool, reason: str,
                     admission: AdmissionRecord | None, result: ImproveResult,
                     tags: Mapping[str, object]) -> MemoryItem | None:
    """The item of this decided expansion (None when nothing was decided or distillation broke)."""
    # recombine and refine write their problem without a diagnosis: their problem is the proposal
    diagnosis = plan.diagnosis or Diagnosis(plan.problem, None, False, 0)
    try:
        return memory.decided(parent_id, plan.lesson, diagnosis, accepted=accepted, reason=reason,
                              verdict_checks=admission.checks if admission is not None else None,
                              diff=result.diff, diff_sha256=admission.diff_sha256 if admission is not None else "",
                              tags=tags)
    except Exception as exc:  # noqa: BLE001 - a memory item is never worth losing the expansion
        memory.errors.append(f"memory distillation failed: {exc.__class__.__name__}: {exc}")
        return None


def admission_record(parent_id: int, verdict: Verdict, producer: Mapping[str, Any],
                     redact: Callable[[str], str] = str, accepted: bool | None = None,
                     extra_checks: Sequence[Mapping[str, Any]] = ()) -> AdmissionRecord:
    """The ledger row of the gate's `verdict` on a child of `parent_id`.

    `accepted` overrides the verdict when a later check (a recombination's unresolved merge)
    turned the child down; `extra_checks` says which.
    """
    checks = tuple({**c.to_dict(), "reason": redact(c.reason), "details": [redact(d) for d in c.details]}
                   for c in verdict.checks) + tuple(extra_checks)
    accepted = verdict.accepted if accepted is None else accepted
    reason = verdict.reason if accepted == verdict.accepted else "; ".join(str(c["reason"]) for c in extra_checks)
    return AdmissionRecord(parent_id, "accepted" if accepted else "rejected",
                           diff_sha256=verdict.diff_sha256, child_digest=verdict.child_digest,
                           reason=redact(reason), checks=checks, producer=dict(producer))

def _plan(
    setup: ExpandSetup, parent_id: int, parent_dir: Path, evals: Sequence[EvalView], rng: random.Random,
    work_dir: Path, tags: Mapping[str, object], peers: Peers | None,
) -> Plan:
    """The operator drawn from the run's mix and its material; revise when it cannot apply."""
    operator = choose_operator(setup.evolve.operators, rng)
    budget, _ = setup.evolve.budgets(setup.model)
    note = ""
    if operator == "recombine":
        found = _recombine(setup, parent_id, parent_dir, work_dir, peers, budget) if peers is not None else (
            "no view of the other versions")
        if isinstance(found, Plan):
            return found
        note = f"recombine: {found}; revised instead"
    elif operator == "refine":
        problem = refine_problem(evals, budget)
        if problem is not None:
            return Plan("refine", problem, "refine", {"operator": "refine", "problem": problem})
        note = "refine: the version has solved no task yet; revised instead"
    lesson = pick_lesson(list(evals), rng)
    chat_fn = _chat_fn(setup, {**tags, "purpose": DIAGNOSE_PURPOSE})
    ctx = diagnosis_context(setup, lesson, parent_dir)
    recalled = _recall(setup.memory, ctx, parent_id)
    if recalled:
        ctx = dataclasses.replace(ctx, memory=setup.memory.render(recalled))  # type: ignore[union-attr]
    diagnosis = diagnose(ctx, chat_fn, setup.evolve.diagnose_retries)
    notes = {**json.loads(diagnosis.summary()), "operator": "revise", **({"note": note} if note else {})}
    return Plan("revise", diagnosis.problem, lesson.label(), notes, fell_back=diagnosis.fell_back,
                diagnosis=diagnosis, recalled=tuple(recalled))


def _recombine(
    setup: ExpandSetup, parent_id: int, parent_dir: Path, work_dir: Path, peers: Peers, budget: int
) -> Plan | str:
    """The recombination plan, or why there is none."""
    versions = peers.versions()
    partner = pick_partner(versions, parent_id) if parent_id in versions else None
    base = common_ancestor(versions, parent_id, partner) if partner is not None else None
    if partner is None or base is None:
        return "no measured version outside this one's lineage"
    merged = work_dir / "merged"
    try:
        merge = merge_sources(peers.source(base), parent_dir, peers.source(partner), merged)
    except ImproveError as exc:
        return f"the merge with version {partner} failed ({exc})"
    problems = {task_id: task.problem_statement for task_id, task in setup.tasks.items()}
    problem = recombine_problem(versions[parent_id], versions[partner], merge.conflicts, merge.ours_diff,
                                merge.theirs_diff, problems, budget)
    notes = {"operator": "recombine", "partner": partner, "ancestor": base, "conflicts": list(merge.conflicts),
             "problem": problem}
    return Plan("recombine", problem, f"recombine:{parent_id}+{partner}", notes, start_dir=merged,
                second_parent=partner, conflicts=merge.conflicts)


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
        return chat(setup.gateway_url, setup.alias, messages, tags, max_tokens=setup.evolve.diagnose_max_tokens,
                    timeout=setup.diagnose_timeout_s, response_format=json_format(DIAGNOSIS_SCHEMA))

    return call
