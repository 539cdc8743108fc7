"""A stand-in for self-improvement that implements a diagnosis literally, for memory tests and
`benchmarks/memory_bench.py`.

`ProposalImprover` (same call as `hgm.evolve.improve.self_improve`) turns the problem the
diagnosis wrote into a child without a sandbox or a model: it appends the proposal's
first line to one of the agent's modules as a comment, so the same proposal always adds
the same lines. Then the real admission gate judges the child (static checks; the test
checks are skipped without a sandbox). A proposal that says REJECT-ME also writes a file
outside `agent/` (the gate rejects it: `outside_package`); one that says NO-CHANGE changes
nothing (no child reaches the gate).
"""

from __future__ import annotations

import difflib
import re
import shutil
from pathlib import Path
from typing import Any

from hgm.evolve.gate import vet
from hgm.evolve.improve import ImproveResult

EDITABLE = ("agent/prompts.py", "agent/loop.py", "agent/__main__.py")
REJECT, NO_CHANGE = "REJECT-ME", "NO-CHANGE"


MARKER_RE = re.compile(r"\[\[[^\]]*\]\]\s*")


def proposal_line(problem: str) -> str:
    """The proposal a problem statement carries, as one normalised line."""
    match = re.search(r"## Proposed improvement\n(.+)", problem)
    text = match.group(1) if match else next((ln for ln in problem.splitlines() if ln.strip() and not ln.startswith("#")), "")
    return " ".join(text.split())[:300]


def code_line(proposal: str) -> str:
    """What the child's code says of a proposal: its words without [[markers]] (a scripted
    model keyed on markers must learn of earlier proposals from memory, not from the code)."""
    return MARKER_RE.sub("", proposal).strip()


def added_lines(diff: str) -> str:
    """The lines a diff adds (what makes two changes the same wherever they are applied)."""
    return "\n".join(ln[1:] for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++"))


class ProposalImprover:
    """Implements each proposal literally; counts what it was asked to do."""

    def __init__(self) -> None:
        self.proposals: list[str] = []
        self.diffs: list[str] = []  # one per proposal ('' when nothing changed)

    def __call__(self, backend: Any, parent_dir: Path, problem: str, access: Any, limits: Any, work_dir: Path, *,
                 gate: Any = None, redact: Any = None, start_dir: Any = None) -> ImproveResult:
        line = proposal_line(problem)
        self.proposals.append(line)
        self.diffs.append("")
        if NO_CHANGE in line:
            return ImproveResult(False, reason="empty diff: the agent changed nothing")
        child = Path(work_dir) / "child"
        shutil.copytree(parent_dir, child, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".complete"))
        rel = next(p for p in EDITABLE if (child / p).is_file())
        before = (child / rel).read_text(encoding="utf-8")
        after = before + f"\n# improvement: {code_line(line)}\n"
        (child / rel).write_text(after, encoding="utf-8")
        diff = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), f"a/{rel}", f"b/{rel}"))
        diff = f"diff --git a/{rel} b/{rel}\n{diff}"
        if REJECT in line:
            (child / "notes.txt").write_text(code_line(line) + "\n", encoding="utf-8")
            diff += f"diff --git a/notes.txt b/notes.txt\n+++ b/notes.txt\n+{code_line(line)}\n"
        self.diffs[-1] = diff
        verdict = vet(parent_dir, child, gate)
        if not verdict.accepted:
            return ImproveResult(False, reason=f"rejected by the gate: {verdict.reason}", diff=diff, verdict=verdict)
        return ImproveResult(True, child_dir=child, diff=diff, verdict=verdict)
