"""What an improve attempt's diff must be before it becomes a child (pure functions, no I/O).

The diff must be a non-empty git diff; the child it makes is then judged by the
admission gate (`hgm.evolve.gate.vet`), which owns every other rule.
"""

from __future__ import annotations


def diff_problem(diff: str) -> str | None:
    """Why a diff cannot make a child at all, or None."""
    if not diff.strip():
        return "empty diff: the agent changed nothing"
    if "diff --git" not in diff:
        return "the patch is not a git diff"
    return None
