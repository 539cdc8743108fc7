"""Build what the diagnosis sees: source excerpt, rendered trajectory, grading report.

Everything read here was written by an agent or a test run, i.e. is untrusted: files may
be missing, huge, not UTF-8 or not JSON; every reader degrades to a short note instead of
raising, and every text is cut to a size budget (head and tail kept).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hgm.evaluation.transcript import clip, read_text, render_trajectory

__all__ = ["clip", "grading_report", "read_text", "render_trajectory", "source_excerpt"]

SOURCE_SUFFIXES = (".py", ".md", ".txt", ".toml", ".json")


def source_excerpt(tree: Path, limit: int, package: str = "agent") -> str:
    """The agent's source files under `tree/package`, each under a header, clipped to `limit`.

    Non-test files come first so that a small budget is spent on the code, not its tests.
    """
    root = Path(tree) / package
    if not root.is_dir():
        return "(agent source not found)"
    files = sorted(
        (p for p in root.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES and "__pycache__" not in p.parts),
        key=lambda p: ("tests" in p.relative_to(root).parts, str(p)),
    )
    chunks = []
    for path in files:
        rel = path.relative_to(tree)
        chunks.append(f"=== {rel} ===\n{read_text(path, 200_000)}")
    return clip("\n\n".join(chunks), limit) if limit > 0 else ""


def grading_report(report: Any, log: str, detail: str, limit: int) -> str:
    """Which hidden tests failed, and the tail of the test output.

    `report` is the evaluator's per-task report (swebench shape: tests_status with
    FAIL_TO_PASS / PASS_TO_PASS success/failure lists) or anything else; test *source*
    never appears here.
    """
    lines: list[str] = []
    if detail:
        lines.append(f"Outcome detail: {detail}")
    status = report.get("tests_status") if isinstance(report, dict) else None
    if isinstance(status, dict):
        for group in ("FAIL_TO_PASS", "PASS_TO_PASS"):
            info = status.get(group)
            if isinstance(info, dict):
                failed = info.get("failure") or []
                passed = info.get("success") or []
                lines.append(f"{group}: {len(passed)} passed, {len(failed)} failed")
                lines += [f"  FAILED {name}" for name in list(failed)[:30]]
    elif isinstance(report, dict) and report:
        lines.append(clip(json.dumps(report, default=str), 2000))
    if log:
        lines.append("Test output (end):")
        lines.append(log[-max(0, limit - sum(len(x) for x in lines) - 100) :] if limit > 200 else "")
    return clip("\n".join(lines), limit)
