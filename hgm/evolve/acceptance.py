"""Acceptance rules for a self-modification's diff (pure functions, no I/O).

A child is accepted only if its diff is non-empty, leaves the contract tests untouched
and (checked elsewhere, in a fresh sandbox) keeps the agent's own test suite green.
"""

from __future__ import annotations

import fnmatch
import re

CONTRACT_TEST_GLOB = "agent/tests/test_contract*.py"
_DIFF_HEADER = re.compile(r"^diff --git (\S+) (\S+)$", re.MULTILINE)
_RENAME = re.compile(r"^(?:rename|copy) (?:from|to) (.+)$", re.MULTILINE)
_PLUS_MINUS = re.compile(r"^(?:---|\+\+\+) (?:[ab]/)?(.+?)\t?$", re.MULTILINE)


def _strip_prefix(path: str) -> str:
    path = path.strip().strip('"')
    return path[2:] if path[:2] in ("a/", "b/") else path


def touched_paths(diff: str) -> set[str]:
    """Every file path a unified git diff names (old and new sides)."""
    paths: set[str] = set()
    for old, new in _DIFF_HEADER.findall(diff):
        paths.update((_strip_prefix(old), _strip_prefix(new)))
    paths.update(p.strip() for p in _RENAME.findall(diff))
    for p in _PLUS_MINUS.findall(diff):
        if p != "/dev/null":
            paths.add(_strip_prefix(p))
    paths.discard("dev/null")
    return paths


def touches_contract_tests(diff: str, glob: str = CONTRACT_TEST_GLOB) -> list[str]:
    """The contract test files the diff changes, adds or removes (sorted)."""
    return sorted(p for p in touched_paths(diff) if fnmatch.fnmatchcase(p, glob))


def diff_problem(diff: str) -> str | None:
    """Why a diff cannot be accepted before running tests, or None."""
    if not diff.strip():
        return "empty diff: the agent changed nothing"
    if "diff --git" not in diff:
        return "the patch is not a git diff"
    touched = touches_contract_tests(diff)
    if touched:
        return f"the diff modifies contract tests ({', '.join(touched)})"
    return None
