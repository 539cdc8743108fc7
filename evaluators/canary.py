"""Contamination canaries: a unique marker carried by each task's hidden test material.

`canary_for(task)` is a marker derived from the task's id and hidden tests (the same in
every session of a run, different for every task). hgm adds it wherever hidden test
material is written out: the eval script in the grading sandbox and the test patch
when a diagnosis is allowed to see it (`evolve.include_test_patch`). An agent never
sees any of these, so the marker showing up in what an agent produced (its trajectory
or its patch) means hidden test material reached it: the evaluation is recorded as
`contaminated` and not scored.
"""

from __future__ import annotations

import hashlib
from typing import Any

PREFIX = "hgm-canary-"
NOTE = "hidden test material of an hgm task; it must never reach an agent"


def canary_for(task: Any) -> str:
    """The marker of `task` (anything with `instance_id` and `test_patch`)."""
    material = f"{task.instance_id}\0{getattr(task, 'test_patch', '')}".encode("utf-8", errors="surrogateescape")
    return PREFIX + hashlib.sha256(b"hgm canary v1\0" + material).hexdigest()[:24]


def marked(text: str, canary: str, comment: str = "#") -> str:
    """`text` with one leading comment line carrying `canary` (scripts, diffs' preambles)."""
    if text.startswith("#!"):
        first, _, rest = text.partition("\n")
        return f"{first}\n{comment} {canary}: {NOTE}\n{rest}"
    return f"{comment} {canary}: {NOTE}\n{text}"


def found_in(canary: str, *texts: str | bytes | None) -> bool:
    """True when `canary` occurs in any of `texts`."""
    needle = canary.encode()
    for text in texts:
        if not text:
            continue
        if (needle in text) if isinstance(text, bytes) else (canary in text):
            return True
    return False


__all__ = ["PREFIX", "canary_for", "found_in", "marked"]
