"""Pick the lesson an expansion learns from, out of the parent's evaluation records.

As in the public HGM/DGM reference: when at least a tenth of the parent's attempts were
empty patches, a quarter of the time the lesson is "many empty patches"; otherwise a
quarter of the time "stochastic results"; otherwise, if some attempt ran out of context,
a quarter of the time "context length exceeded"; otherwise one failed task at random
(the default), or any evaluated task when none failed. With no evaluation at all the
lesson is a general "no evaluation yet" one.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from archive.schema import UNMEASURED_EVAL_STATUSES

LessonKind = Literal["failed_task", "empty_patches", "stochastic", "context_length", "no_evals"]

EMPTY_PATCH_SHARE = 0.1
SPECIAL_LESSON_P = 0.25
_FAILED_STATUSES = ("unresolved", "patch_failed", "timeout", "empty_patch")
_CONTEXT_RE = re.compile(
    r"context[_ ]length[_ ]exceeded|maximum context length|context window|input is too long"
    r"|exceeds? the context|too many tokens",
    re.IGNORECASE,
)
_SCAN_BYTES = 2_000_000


@dataclass(frozen=True)
class EvalView:
    """What lesson picking and diagnosis need to know about one evaluation."""

    task_id: str
    status: str  # an archive evaluation status (archive.schema.EVAL_STATUSES)
    detail: str = ""
    trajectory_path: str | None = None
    log_path: str | None = None

    @property
    def measured(self) -> bool:
        return self.status not in UNMEASURED_EVAL_STATUSES


@dataclass(frozen=True)
class Lesson:
    """What an expansion tries to fix: a kind, and for `failed_task` the task and its record."""

    kind: LessonKind
    task_id: str | None = None
    evaluation: EvalView | None = None
    stats: tuple[tuple[str, int], ...] = ()  # (status, count) over the parent's measured evals

    def label(self) -> str:
        """Short text for the archive and `hgm show` (e.g. 'failed_task:mini-003')."""
        return f"{self.kind}:{self.task_id}" if self.task_id else self.kind


def _mentions_context_limit(ev: EvalView) -> bool:
    if _CONTEXT_RE.search(ev.detail or ""):
        return True
    for path in (ev.trajectory_path, ev.log_path):
        if not path:
            continue
        try:
            with Path(path).open("rb") as fh:
                text = fh.read(_SCAN_BYTES).decode("utf-8", errors="replace")
        except OSError:
            continue
        if _CONTEXT_RE.search(text):
            return True
    return False


def pick_lesson(evals: Sequence[EvalView], rng: random.Random) -> Lesson:
    """Choose the lesson for expanding a node from its own evaluation records."""
    measured = [e for e in evals if e.measured]
    counts: dict[str, int] = {}
    for e in measured:
        counts[e.status] = counts.get(e.status, 0) + 1
    stats = tuple(sorted(counts.items()))
    if not measured:
        return Lesson("no_evals", stats=stats)
    empty = [e for e in measured if e.status == "empty_patch"]
    failed = [e for e in measured if e.status in _FAILED_STATUSES]
    if len(empty) >= EMPTY_PATCH_SHARE * len(measured) and rng.random() < SPECIAL_LESSON_P:
        return Lesson("empty_patches", stats=stats)
    if rng.random() < SPECIAL_LESSON_P:
        return Lesson("stochastic", stats=stats)
    if failed and any(_mentions_context_limit(e) for e in failed):
        if rng.random() < SPECIAL_LESSON_P:
            return Lesson("context_length", stats=stats)
    pool = failed or measured
    chosen = pool[rng.randrange(len(pool))]
    return Lesson("failed_task", task_id=chosen.task_id, evaluation=chosen, stats=stats)
