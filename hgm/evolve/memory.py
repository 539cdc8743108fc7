"""The lessons memory: what earlier expansions taught, distilled, retrieved, guarded.

After an expansion is decided (the gate accepted or rejected its child, or no change was
made) and again once the child has been measured on enough of the tasks its parent was
measured on, one model call (purpose `distill`) words a small item: a title, a one-line
description and the strategy. The evidence and the polarity (helped / hurt / unproven)
never come from a model: they are computed from what hgm measured (the gate's verdict,
the child's and its parent's results on shared tasks) and the polarity moves only when
those counts change. The model's JSON is validated and asked for once more; when it still
fails, deterministic words built from the facts are stored instead (`written_by =
fallback`). Every text is redacted and any contamination canary removed; hidden test
material reaching the distiller makes its words untrusted (fallback).

Each diagnosis is shown the k most relevant items (its lesson's text as an FTS5/BM25
query over the run and the shared bank, fused with what was tried on the parent's own
lineage and with the run's newest items), changes that hurt first as things to avoid, in
a bounded share of its prompt.

`RunMemory` is a run's memory (its archive, optionally a bank file shared by runs);
items of an expansion are stored with it in one transaction by the loop's executor,
comparison items by a hook after an evaluation is recorded (`after_eval`), never under
the executor's recording lock.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from archive.memory import MemoryBank, MemoryItem
from archive.run import Run
from evaluators.canary import PREFIX as CANARY_PREFIX

from hgm.config import MemoryConfig
from hgm.evolve.context import clip
from hgm.evolve.diagnose import CONTRACT_NOTE, MEMORY_TITLE, Diagnosis, DiagnosisContext
from hgm.gateway.chat import ChatFactory, ChatFn, ask_json, extract_json

PURPOSE = "distill"
CANARY_RE = re.compile(re.escape(CANARY_PREFIX) + r"[0-9a-f]{24}")
CANARY_REMOVED = "[canary removed]"
RRF_K = 60  # reciprocal rank fusion constant (Cormack et al.)
TITLE_CHARS, DESCRIPTION_CHARS, STRATEGY_CHARS = 120, 300, 900
# expansions that failed for reasons not of the agent's making teach nothing about a change
_INFRA_REASONS = ("sandbox failed", "preparation failed", "internal error")



# ----------------------------------------------------------------------------- evidence (measured)


def decided_evidence(decision: str, reason: str = "", checks: Sequence[Mapping[str, Any]] = (),
                     diff_sha256: str = "") -> dict[str, Any]:
    """The evidence of a decided expansion: the gate's decision and why (`no_change`: no child)."""
    failed = [str(c.get("name")) for c in checks if c.get("verdict") == "fail"]
    return {"decision": decision, "reason": reason, "failed_checks": failed, "diff_sha256": diff_sha256}


def comparison(child: Mapping[str, int], parent: Mapping[str, int]) -> dict[str, int]:
    """Counts of a child against its parent on the tasks both were measured on (utility 0/1 by task)."""
    shared = sorted(set(child) & set(parent))
    return {
        "shared_tasks": len(shared),
        "child_resolved": sum(child[t] for t in shared),
        "parent_resolved": sum(parent[t] for t in shared),
        "wins": sum(1 for t in shared if child[t] and not parent[t]),
        "losses": sum(1 for t in shared if parent[t] and not child[t]),
    }


def polarity_of(stage: str, evidence: Mapping[str, Any], margin: int = 1) -> str:
    """helped / hurt / unproven, from measured evidence only.

    Decided: a child the gate rejected hurt; an accepted one is unproven until compared.
    Compared: tasks the child won minus those it lost against its parent, by `margin`.
    """
    if stage == "decided":
        return "hurt" if evidence.get("decision") == "rejected" else "unproven"
    lead = int(evidence.get("wins", 0)) - int(evidence.get("losses", 0))
    return "helped" if lead >= margin else "hurt" if -lead >= margin else "unproven"


def outcome_line(item: MemoryItem) -> str:
    """What hgm measured about an item, in one line (never the model's words)."""
    ev = item.evidence
    if item.stage == "compared":
        n = ev.get("shared_tasks", 0)
        return (f"{item.polarity}: on {n} shared tasks the child resolved {ev.get('child_resolved', 0)}, "
                f"its parent {ev.get('parent_resolved', 0)} ({ev.get('wins', 0)} won, {ev.get('losses', 0)} lost)")
    decision = ev.get("decision")
    if decision == "accepted":
        return "accepted by the admission gate; not compared with its parent yet"
    if decision == "rejected":
        failed = ", ".join(ev.get("failed_checks") or []) or "a check"
        return f"rejected by the admission gate ({failed} failed): {clip(str(ev.get('reason', '')), 160)}"
    return f"no child: {clip(str(ev.get('reason', '')), 120)}"


# ----------------------------------------------------------------------------- guards


def has_canary(*texts: str) -> bool:
    """True when any text carries a contamination canary (hidden test material)."""
    return any(CANARY_RE.search(t or "") for t in texts)


def scrub(text: str, redact: Callable[[str], str]) -> str:
    """`text` with secrets redacted and any canary removed."""
    return CANARY_RE.sub(CANARY_REMOVED, redact(text or ""))


# ----------------------------------------------------------------------------- distillation


class DistilledText(BaseModel):
    """The words of an item: the only part a model writes (extra fields, e.g. a claimed polarity, are dropped)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    title: str = Field(..., min_length=3)
    description: str = Field(..., min_length=3)
    strategy: str = Field(..., min_length=10)

    @field_validator("title", "description", "strategy", mode="before")
    @classmethod
    def _one_text(cls, value: Any) -> Any:
        return " ".join(value.split()) if isinstance(value, str) else value

    def clipped(self) -> "DistilledText":
        return DistilledText(title=self.title[:TITLE_CHARS], description=self.description[:DESCRIPTION_CHARS],
                             strategy=self.strategy[:STRATEGY_CHARS])


# the reply's shape (local models decode under it when memory words are asked of them)
DISTILL_SCHEMA = {"type": "object", "required": ["title", "description", "strategy"], "properties": {
    "title": {"type": "string", "maxLength": 120}, "description": {"type": "string", "maxLength": 240},
    "strategy": {"type": "string", "maxLength": 700}}}


def parse_distilled(text: str) -> DistilledText:
    """Validate a distillation reply; raise ValueError with a short reason."""
    try:
        return DistilledText.model_validate(extract_json(text)).clipped()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3])
        raise ValueError(f"the JSON does not match the schema ({problems})") from None


@dataclass(frozen=True)
class Facts:
    """What the distiller may see: hgm's records of one change, never the agent's own account."""

    stage: str
    lesson: str
    proposal: str  # what the diagnosis asked for
    change: str  # the change as made (diff excerpt), or a note that none was made
    outcome: str  # outcome_line of the item's measured evidence


_DISTILL_FORMAT = """Reply with ONE JSON object only, with these string fields:
- "title": the change in at most 12 words (what was changed, not whether it worked);
- "description": one line saying what the change does to the agent;
- "strategy": the change in 2-4 sentences, general enough to be reused or avoided on other tasks.
Do not state results or claim success: hgm records the measured outcome beside your words."""


def distill_messages(facts: Facts) -> list[dict[str, str]]:
    """System + user messages of one distillation call."""
    system = ("You keep the memory of a search that improves a coding agent by editing its own source. "
              "Summarise ONE attempted change as a short, reusable note.")
    user = "\n".join([
        f"# Lesson the change addressed\n{facts.lesson}\n",
        f"# What the diagnosis proposed\n{facts.proposal.strip() or '(nothing recorded)'}\n",
        f"# The change as made\n{facts.change.strip() or '(no change was made)'}\n",
        f"# What hgm measured ({facts.stage})\n{facts.outcome}\n",
        _DISTILL_FORMAT,
    ])
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def fallback_text(facts: Facts) -> DistilledText:
    """Deterministic words built from the facts (used when the model's reply is unusable)."""
    proposal = " ".join(facts.proposal.split())
    first = re.split(r"(?<=[.!?])\s", proposal, maxsplit=1)[0] if proposal else ""
    title = first or f"A change for {facts.lesson}"
    strategy = proposal or facts.change or f"A change made to address {facts.lesson}."
    return DistilledText(title=title[:TITLE_CHARS], description=f"A change made for lesson {facts.lesson}."[:DESCRIPTION_CHARS],
                         strategy=(strategy if len(strategy) >= 10 else f"{strategy} (no details)")[:STRATEGY_CHARS])


@dataclass(frozen=True)
class Words:
    text: DistilledText
    written_by: str  # model | fallback
    errors: tuple[str, ...] = ()


def distill(facts: Facts, chat_fn: ChatFn | None, retries: int, redact: Callable[[str], str]) -> Words:
    """Ask for the item's words; validated, retried, else a fallback; redacted, canary-free.

    Hidden test material in the facts or the reply (a canary) makes the model's words
    untrusted: the fallback is stored, its texts scrubbed. Without `chat_fn`, the fallback.
    """
    parsed, errors = None, []
    if chat_fn is not None:
        answer = ask_json(chat_fn, distill_messages(facts), parse_distilled, retries, _DISTILL_FORMAT)
        parsed, errors = answer.value, list(answer.errors)
    if parsed is not None and has_canary(facts.proposal, facts.change, parsed.title, parsed.description,
                                         parsed.strategy):
        parsed, errors = None, errors + ["hidden test material (a canary) reached the distiller"]
    written_by = "model" if parsed is not None else "fallback"
    text = parsed or fallback_text(facts)
    clean = DistilledText(title=scrub(text.title, redact), description=scrub(text.description, redact),
                          strategy=scrub(text.strategy, redact))
    return Words(clean, written_by, tuple(errors))


def proposal_of(diagnosis: Diagnosis) -> str:
    """What a diagnosis asked the improve agent to do, in a few sentences."""
    reply = diagnosis.reply
    if reply is not None:
        return f"{reply.improvement_proposal.rstrip('.')}. Plan: {reply.implementation_plan}"
    problem = diagnosis.problem.split(f"## {MEMORY_TITLE}")[0]  # not the earlier items it was shown
    lines = [ln for ln in problem.splitlines() if ln.strip() and not ln.startswith("#") and ln != CONTRACT_NOTE]
    return clip(" ".join(lines), 900)


def change_excerpt(diff: str, limit: int = 1500) -> str:
    """The files a diff touches and its head and tail."""
    files = re.findall(r"^diff --git a/(\S+)", diff, re.MULTILINE)
    if not diff.strip():
        return ""
    return (f"files: {', '.join(files)}\n" if files else "") + clip(diff, limit)


# ----------------------------------------------------------------------------- retrieval


def query_text(ctx: DiagnosisContext) -> str:
    """The text a diagnosis looks up memory with: its lesson and the task's issue."""
    lesson = ctx.lesson
    parts = [lesson.label(), lesson.kind.replace("_", " ")]
    if ctx.problem_statement:
        parts.append(ctx.problem_statement[:400])
    return " ".join(parts)


def fuse(ranked_lists: Iterable[Sequence[MemoryItem]], k: int) -> list[MemoryItem]:
    """The k best items by reciprocal rank fusion, one per expansion (its comparison if any)."""
    scores: dict[str, float] = {}
    items: dict[str, MemoryItem] = {}
    for ranked in ranked_lists:
        for rank, item in enumerate(ranked):
            if item.retired:
                continue
            scores[item.uid] = scores.get(item.uid, 0.0) + 1.0 / (RRF_K + rank + 1)
            items[item.uid] = item
    best: dict[tuple, tuple[float, MemoryItem]] = {}
    for uid, item in items.items():
        key = (item.run_key, item.expansion_id) if item.expansion_id is not None else (uid,)
        held = best.get(key)
        score = scores[uid] if held is None else max(scores[uid], held[0])
        if held is None or (item.stage == "compared" and held[1].stage != "compared"):
            best[key] = (score, item)
        else:
            best[key] = (score, held[1])
    ordered = sorted(best.values(), key=lambda pair: (-pair[0], -(pair[1].created or 0.0)))
    return [item for _, item in ordered[:k]]


_AVOID = "These changes hurt or were rejected; do not propose them again:"
_TRIED = "These changes were tried as well:"
_CLOSE = "Propose a change that differs from the ones above, or builds on one that helped."


def render_memory(items: Sequence[MemoryItem], budget: int) -> str:
    """Items as the diagnosis sees them, changes that hurt first, within `budget` characters."""
    if not items or budget <= 0:
        return ""
    groups = [(_AVOID, [i for i in items if i.polarity == "hurt"]), (_TRIED, [i for i in items if i.polarity != "hurt"])]
    fixed = len(_CLOSE) + sum(len(head) + 1 for head, group in groups if group) + 1
    per_item = max(80, (budget - fixed) // len(items) - 1)
    lines: list[str] = []
    used = len(_CLOSE)
    for head, group in groups:
        if not group:
            continue
        block = [head]
        for item in group:
            text = (f"- {item.title} [{outcome_line(item)}] {item.description} Tried: {item.strategy}")
            text = " ".join(text.split())
            block.append(text if len(text) <= per_item else text[: per_item - 3] + "...")
        for line in block:
            if used + len(line) + 1 > budget:
                break
            lines.append(line)
            used += len(line) + 1
    if not lines or lines[-1] in (_AVOID, _TRIED):
        lines = lines[:-1] if lines else lines
    if not lines:
        return ""
    return "\n".join(lines + [_CLOSE])


# ----------------------------------------------------------------------------- a run's memory


class RunMemory:
    """A run's memory: its archive's items, and a bank shared by runs when one is given.

    Reads may happen in any worker thread; writes of comparison items are small archive
    transactions of their own; an expansion's items travel in its `ExpansionOutcome`.
    """

    def __init__(self, run: Run, settings: MemoryConfig, model: str, chat_for: ChatFactory,
                 redact: Callable[[str], str], bank: MemoryBank | None = None) -> None:
        self.run = run
        self.settings = settings
        self.model = model
        self.chat_for = chat_for
        self.redact = redact
        self.bank = bank
        self.prompt_chars = settings.prompt_budget(model)
        self._lock = threading.Lock()
        self._comparing: set[int] = set()
        self.errors: list[str] = []

    # ----- retrieval

    def recall(self, ctx: DiagnosisContext, parent_id: int) -> list[MemoryItem]:
        """The k items most relevant to a diagnosis of `parent_id` for `ctx`'s lesson."""
        k = self.settings.k
        if k <= 0:
            return []
        query = query_text(ctx)
        lineage = self.run.lineage(parent_id)
        mine = {"run_key": self.run.key, "include_retired": False, "newest_first": True, "limit": 2 * k}
        lists = [self.run.memory_search(query, 2 * k), self.run.memory(parents=lineage, **mine),
                 self.run.memory(**mine)]
        if self.bank is not None:  # this run's own items are read from the run (the bank's copy may lag)
            lists.append([i for i in self.bank.search(query, 2 * k) if i.run_key != self.run.key])
        return fuse(lists, k)

    def render(self, items: Sequence[MemoryItem]) -> str:
        return render_memory(items, self.prompt_chars)

    # ----- distillation

    def item(self, stage: str, lesson: str, proposal: str, change: str, evidence: Mapping[str, Any],
             tags: Mapping[str, object], *, parent_id: int | None, node_id: int | None = None,
             expansion_id: int | None = None, diff_sha256: str = "") -> MemoryItem:
        """Distil one item (a model call through the gateway, tagged purpose `distill`).

        Every text, the evidence's included, is scrubbed before the model or the archive sees it.
        """
        evidence = {k: scrub(v, self.redact) if isinstance(v, str) else v for k, v in evidence.items()}
        polarity = polarity_of(stage, evidence, self.settings.margin)
        outcome = outcome_line(MemoryItem("-", stage, polarity, "-", evidence=evidence))
        facts = Facts(stage, lesson, scrub(proposal, self.redact), scrub(change, self.redact), outcome)
        chat_fn = (self.chat_for({**tags, "purpose": PURPOSE}, self.settings.distill_max_tokens, DISTILL_SCHEMA)
                   if self.settings.words_by_model(self.model) else None)
        words = distill(facts, chat_fn, self.settings.distill_retries, self.redact)
        return MemoryItem(
            uuid.uuid4().hex, stage, polarity, words.text.title, words.text.description, words.text.strategy,
            lesson=lesson, evidence=evidence, run=self.run.path.name, run_key=self.run.key, node_id=node_id,
            parent_id=parent_id, expansion_id=expansion_id, diff_sha256=diff_sha256, model=self.model,
            written_by=words.written_by,
        )

    def decided(self, parent_id: int, lesson: str, diagnosis: Diagnosis, *, accepted: bool, reason: str,
                verdict_checks: Sequence[Mapping[str, Any]] | None, diff: str, diff_sha256: str,
                tags: Mapping[str, object]) -> MemoryItem | None:
        """The item of a decided expansion (None when it failed for infrastructure reasons).

        `verdict_checks` is the gate's checks (None: no child reached the gate).
        """
        if not accepted and reason.startswith(_INFRA_REASONS):
            return None
        decision = "accepted" if accepted else "rejected" if verdict_checks is not None else "no_change"
        why = "" if accepted else reason.removeprefix("rejected by the gate: ")
        evidence = decided_evidence(decision, why, verdict_checks or (), diff_sha256)
        return self.item("decided", lesson, proposal_of(diagnosis), change_excerpt(diff), evidence, tags,
                         parent_id=parent_id, diff_sha256=diff_sha256)

    # ----- follow-ups (outside the executor's recording lock)

    def after_eval(self, node_id: int, tags_for: Callable[[int], Mapping[str, object]]) -> list[str]:
        """After an evaluation of `node_id` was recorded: compare each accepted child it is
        part of (as the child, or as the parent) once they share `compare_after` measured
        tasks (a model call), and keep later comparisons' counts and polarity up to date
        (no model call). Returns the uids written."""
        written: list[str] = []
        for decided_item in self.run.memory(run_key=self.run.key, stage="decided", touching=node_id):
            child, parent = decided_item.node_id, decided_item.parent_id
            if child is None or parent is None or decided_item.expansion_id is None:
                continue
            counts = comparison(self._measured(child), self._measured(parent))
            if counts["shared_tasks"] < self.settings.compare_after:
                continue
            evidence = {**counts, "decision": decided_item.evidence.get("decision", "accepted"),
                        "child": child, "parent": parent}
            uid = self._compare(decided_item, evidence, tags_for(child))
            if uid:
                written.append(uid)
        if written:
            self.sync_bank(written)
        return written

    def _compare(self, decided_item: MemoryItem, evidence: dict[str, Any], tags: Mapping[str, object]) -> str | None:
        expansion = decided_item.expansion_id
        assert expansion is not None
        with self._lock:
            if expansion in self._comparing:
                return None
            self._comparing.add(expansion)
        try:
            existing = self.run.memory(run_key=self.run.key, stage="compared", expansion_id=expansion)
            if existing:
                current = existing[0]
                if dict(current.evidence) == evidence:
                    return None
                self.run.update_memory(current.uid, evidence, polarity_of("compared", evidence, self.settings.margin))
                return current.uid
            item = self.item(
                "compared", decided_item.lesson,
                f"{decided_item.title.rstrip('.')}. {decided_item.description} {decided_item.strategy}",
                f"the change of node {decided_item.node_id} (diff {decided_item.diff_sha256[:12] or '-'})",
                evidence, tags, parent_id=decided_item.parent_id, node_id=decided_item.node_id,
                expansion_id=expansion, diff_sha256=decided_item.diff_sha256)
            self.run.add_memory([item])
            return item.uid
        finally:
            with self._lock:
                self._comparing.discard(expansion)

    def _measured(self, node_id: int) -> dict[str, int]:
        return {row["task_id"]: int(row["utility"]) for row in self.run.evaluations(node_id)
                if row["utility"] is not None}

    def sync_bank(self, uids: Sequence[str] | None = None) -> int:
        """Copy this run's items (all, or `uids`) into the bank, or bring its copies up to date."""
        if self.bank is None:
            return 0
        items = self.run.memory(run_key=self.run.key, uids=uids) if uids is not None else \
            self.run.memory(run_key=self.run.key)
        try:
            return self.bank.upsert(items)
        except sqlite3.Error as exc:  # e.g. another run held the bank too long: the next sync catches up
            self.errors.append(f"memory bank {self.bank.path} refused {len(items)} item(s): {exc}")
            return 0

    def close(self) -> None:
        if self.bank is not None:
            self.bank.close()
