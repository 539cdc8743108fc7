"""Level-1 trajectory evolution: several attempts at one task, evolved, one selected for grading.

`AttemptEvolution.run()` makes a first generation of M attempts (the agent alone, then
strategy variants), then T - 1 generations of M attempts, each a fresh, grounded run of
the agent with guidance an operator wrote (`guidance`: revise, recombine, refine) from
compressed earlier attempts (`summary`). After every generation the new candidates are
checked without the hidden tests (`checks`) and all are ranked (`selection`); the
ranking decides which attempts the next operators build on, and at the end which patch
is graded. Budgets are hard: before every attempt and every model call the evaluation's
spend is checked against its token and dollar limits (the gateway enforces them on each
call too), and generations stop early when a limit is reached.

Everything is written under `out_dir/attempts/`: one folder per attempt (patch,
trajectory, result, log, guidance, summary, checks) and `log.jsonl`, where every failed
summary, operator fallback, check error and judge failure is logged.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from archive.records import AttemptRecord

from hgm.evaluation.guidance import MAX_BRIEFS, OPERATORS, AttemptBrief, variant, write_guidance
from hgm.evaluation.guidance import SCHEMA as GUIDANCE_SCHEMA
from hgm.evaluation.patches import file_changes, source_lines
from hgm.evaluation.run_agent import AgentRun
from hgm.evaluation.selection import JUDGE_PURPOSE, JUDGE_SCHEMA, Choice, Features, agreement, choose, rank
from hgm.evaluation.summary import PURPOSE as SUMMARY_PURPOSE
from hgm.evaluation.summary import SCHEMA as SUMMARY_SCHEMA
from hgm.evaluation.summary import summarize_attempt
from hgm.evaluation.transcript import clip
from hgm.gateway.chat import ChatFn

# the JSON shape of the reply of each purpose of hgm's own calls
REPLY_SCHEMAS: dict[str, dict[str, Any]] = {SUMMARY_PURPOSE: SUMMARY_SCHEMA, JUDGE_PURPOSE: JUDGE_SCHEMA,
                                             **{op: GUIDANCE_SCHEMA for op in OPERATORS}}


@dataclass(frozen=True)
class AttemptsPolicy:
    """How many attempts an evaluation makes and what it may spend (1 x 1: today's single attempt)."""

    attempts: int = 1
    generations: int = 1
    max_tokens: int | None = None
    max_usd: float | None = None
    judge: bool = False
    run_tests: bool = True
    summary_chars: int = 3000
    reply_tokens: int = 400

    @property
    def several(self) -> bool:
        return self.attempts * self.generations > 1

    @classmethod
    def from_config(cls, evaluation: Any, model: str) -> "AttemptsPolicy":
        """From a run's `EvaluationConfig` (`hgm.config`) for `model`."""
        return cls(evaluation.attempts, evaluation.generations, evaluation.max_tokens, evaluation.max_usd,
                   evaluation.judge, evaluation.run_tests, evaluation.summary_chars(model),
                   evaluation.summary_max_tokens)


class Checker(Protocol):
    def check(self, patch: str, trajectory_path: Path | None) -> Features: ...


@dataclass
class Attempt:
    """One attempt: how it came about, what it left, what selection saw of it."""

    index: int
    generation: int
    operator: str  # sample | revise | recombine | refine
    parents: tuple[int, ...]
    guidance: str | None
    folder: Path
    run: AgentRun | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    features: Features = field(default_factory=Features)
    notes: list[str] = field(default_factory=list)

    @property
    def patch(self) -> str:
        return self.run.patch if self.run is not None else ""

    @property
    def exit_reason(self) -> str:
        return str(self.run.result().get("exit_reason", "")) if self.run is not None else "error_infra"

    def brief(self) -> AttemptBrief:
        return AttemptBrief(self.index, self.summary, self.features.describe(), self.exit_reason)


@dataclass
class AttemptsOutcome:
    """All attempts, the selection, and why generations stopped early ('' when they did not)."""

    attempts: list[Attempt]
    choice: Choice
    stopped: str = ""

    @property
    def selected(self) -> Attempt:
        return next(a for a in self.attempts if a.index == self.choice.selected)

    def records(self, rel: Callable[[Path], str]) -> tuple[AttemptRecord, ...]:
        """The archive's attempt rows (`rel` makes artifact paths portable)."""
        return tuple(
            AttemptRecord(
                a.index, a.generation, a.operator, a.parents, selected=a.index == self.choice.selected,
                exit_reason=a.exit_reason, tokens=a.tokens, cost_usd=a.cost_usd,
                agent_s=a.run.duration if a.run else None, patch_path=rel(a.folder / "patch.diff"),
                trajectory_path=rel(a.folder / "trajectory.jsonl"), guidance=a.guidance or "", summary=a.summary,
                features=a.features.to_dict(), detail=clip("; ".join(a.notes), 2000),
            )
            for a in self.attempts
        )


def plan_generation(order: list[int], width: int) -> list[tuple[str, tuple[int, ...]]]:
    """(operator, parents) of each new attempt of a later generation, from the ranking (best first).

    The first refines all (best first), the second recombines the two best, the rest revise
    the attempts in rank order.
    """
    plans: list[tuple[str, tuple[int, ...]]] = [("refine", tuple(order[:MAX_BRIEFS]))]
    if width > 1:
        plans.append(("recombine", tuple(order[:2])) if len(order) > 1 else ("revise", (order[0],)))
    plans += [("revise", (order[(k - 2) % len(order)],)) for k in range(2, width)]
    return plans


class AttemptEvolution:
    """One evaluation's attempts. The caller provides the machinery:

    - `solve(guidance, index)`: a fresh, grounded agent run (raises on infrastructure failure);
    - `checker.check(patch, trajectory)`: selection features from a sandbox without hidden tests;
    - `chat_for(purpose, index)`: a model call through the gateway tagged with the evaluation's
      job and the attempt it is for (None: the evaluation as a whole, e.g. the judge);
    - `spent()`: (dollars, tokens) of the evaluation so far; `broken()`: a provider failure
      happened (nothing more is worth trying).
    """

    def __init__(
        self,
        policy: AttemptsPolicy,
        problem: str,
        solve: Callable[[str | None, int], AgentRun],
        checker: Checker,
        chat_for: Callable[[str, int | None], ChatFn],
        spent: Callable[[], tuple[float, int]],
        out_dir: Path,
        broken: Callable[[], bool] = lambda: False,
    ) -> None:
        self.policy, self.problem, self.solve, self.checker = policy, problem, solve, checker
        self.chat_for, self.spent, self.broken = chat_for, spent, broken
        self.folder = out_dir / "attempts"
        self.attempts: list[Attempt] = []
        self._lines: dict[int, frozenset] = {}

    # ------------------------------------------------------------------ the loop
    def run(self) -> AttemptsOutcome:
        self.folder.mkdir(parents=True, exist_ok=True)
        stopped = ""
        error: Exception | None = None
        for generation in range(1, self.policy.generations + 1):
            if generation == 1:
                plans = [("sample", ())] * self.policy.attempts
            else:
                plans = plan_generation(self.ranking(), self.policy.attempts)
            fresh: list[Attempt] = []
            for operator, parents in plans:
                stopped = self.stop_reason()
                if stopped:
                    break
                attempt = self._attempt(generation, operator, parents)
                if attempt.run is None and error is None:
                    error = RuntimeError(attempt.notes[-1])
                fresh.append(attempt)
            self._check(fresh)
            if stopped:
                break
        if not any(a.run for a in self.attempts):
            raise error or RuntimeError(f"no attempt could run ({stopped or 'no attempts planned'})")
        if stopped:
            self.note(None, "stopped", stopped)
        return AttemptsOutcome(self.attempts, self._choose(), stopped)

    def stop_reason(self) -> str:
        """Why no further attempt may start ('' when one may)."""
        usd, tokens = self.spent()
        if self.broken():
            return "the model provider failed during this evaluation"
        if self.policy.max_tokens is not None and tokens >= self.policy.max_tokens:
            return f"the evaluation's token budget is spent ({tokens} of {self.policy.max_tokens})"
        if self.policy.max_usd is not None and usd >= self.policy.max_usd:
            return f"the evaluation's dollar budget is spent (${usd:.4f} of ${self.policy.max_usd:.4f})"
        if self.attempts and self.attempts[-1].exit_reason == "cost_limit":
            return "the gateway refused the last attempt's calls (a budget is spent)"
        return ""

    def ranking(self) -> list[int]:
        return rank({a.index: a.features for a in self.attempts})

    # ------------------------------------------------------------------ one attempt
    def _attempt(self, generation: int, operator: str, parents: tuple[int, ...]) -> Attempt:
        index = len(self.attempts) + 1
        attempt = Attempt(index, generation, operator, parents, None, self.folder / f"a{index:02d}")
        attempt.folder.mkdir(parents=True, exist_ok=True)
        self.attempts.append(attempt)
        attempt.guidance = variant(index - 1) if operator == "sample" else self._guidance(attempt)
        if attempt.guidance:
            (attempt.folder / "guidance.md").write_text(attempt.guidance, encoding="utf-8")
        usd0, tokens0 = self.spent()
        try:
            attempt.run = self.solve(attempt.guidance, index)
        except Exception as exc:  # noqa: BLE001 - the sandbox failed, not the agent: note it, go on
            self.note(attempt, "attempt_failed", f"agent sandbox failed: {exc.__class__.__name__}: {exc}")
            return attempt
        attempt.run.save(attempt.folder)
        usd1, tokens1 = self.spent()
        attempt.cost_usd, attempt.tokens = usd1 - usd0, tokens1 - tokens0
        if self._needs_summary(generation):
            self._summarize(attempt)
        self.note(attempt, "attempt", f"{operator} ended {attempt.exit_reason}, {len(attempt.patch)} bytes of patch")
        return attempt

    def _needs_summary(self, generation: int) -> bool:
        return generation < self.policy.generations or self.policy.judge

    def _guidance(self, attempt: Attempt) -> str:
        by_index = {a.index: a for a in self.attempts}
        briefs = [by_index[i].brief() for i in attempt.parents]
        chat_fn = self.chat_for(attempt.operator, attempt.index)
        result = write_guidance(attempt.operator, chat_fn, clip(self.problem, 4000), briefs)
        if result.error:
            self.note(attempt, "guidance_fallback", f"{attempt.operator} call failed, guidance composed without "
                                                    f"the model: {result.error}")
        return result.text

    def _summarize(self, attempt: Attempt) -> None:
        if self.stop_reason():
            attempt.summary = {"approach": "(not summarised: the evaluation's budget is spent)"}
            return
        trajectory = attempt.folder / "trajectory.jsonl"
        result = summarize_attempt(self.chat_for(SUMMARY_PURPOSE, attempt.index), self.problem, trajectory, attempt.patch,
                                   attempt.exit_reason, self.policy.summary_chars)
        attempt.summary = result.summary
        if result.error:
            self.note(attempt, "summary_failed", result.error)
        (attempt.folder / "summary.json").write_text(json.dumps(attempt.summary, indent=1), encoding="utf-8")

    # ------------------------------------------------------------------ selection
    def _check(self, fresh: list[Attempt]) -> None:
        for attempt in fresh:
            if attempt.run is None:
                attempt.features = Features(error="no run")
                continue
            attempt.features = self.checker.check(attempt.patch, attempt.folder / "trajectory.jsonl")
            if attempt.features.error:
                self.note(attempt, "check_error", attempt.features.error)
            skip = set(attempt.features.repro_scripts)
            self._lines[attempt.index] = source_lines(file_changes(attempt.patch), skip)
        valid = {a.index for a in self.attempts if a.features.valid}
        for index, value in agreement(self._lines, valid).items():
            next(a for a in self.attempts if a.index == index).features.agreement = value
        for attempt in self.attempts:
            (attempt.folder / "checks.json").write_text(json.dumps(attempt.features.to_dict(), indent=1),
                                                        encoding="utf-8")

    def _choose(self) -> Choice:
        judge = None
        if self.policy.judge:
            skip = self.stop_reason()
            if skip:
                self.note(None, "judge_skipped", skip)
            else:
                judge = self.chat_for(JUDGE_PURPOSE, None)
        ran = [a for a in self.attempts if a.run is not None]
        choice = choose({a.index: a.features for a in ran}, judge=judge, problem=self.problem,
                        summaries={a.index: a.summary for a in ran}, patches={a.index: a.patch for a in ran})
        if choice.judge_error:
            self.note(None, "judge_failed", f"{choice.judge_error}; the ranking's first stands")
        self.note(None, "selected", f"attempt {choice.selected} by {choice.by}; ranking {list(choice.ranking)}")
        return choice

    def note(self, attempt: Attempt | None, event: str, text: str) -> None:
        """Log one event to `attempts/log.jsonl` (failures also to the attempt's notes: the archive's detail)."""
        if attempt is not None and event != "attempt":
            attempt.notes.append(f"{event}: {text}")
        entry = {"time": time.time(), "event": event, "attempt": attempt.index if attempt else None, "text": text}
        with (self.folder / "log.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
