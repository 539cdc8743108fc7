"""Build what the diagnosis sees: source excerpt, rendered trajectory, grading report.

Everything read here was written by an agent or a test run, i.e. is untrusted: files may
be missing, huge, not UTF-8 or not JSON; every reader degrades to a short note instead of
raising, and every text is cut to a size budget (head and tail kept).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

SOURCE_SUFFIXES = (".py", ".md", ".txt", ".toml", ".json")
MAX_FILE_BYTES = 2_000_000


def clip(text: str, limit: int, marker: str = "\n[... {n} characters cut ...]\n") -> str:
    """Keep the head and tail of `text` so that it fits in `limit` characters."""
    if len(text) <= limit:
        return text
    note = marker.format(n=len(text) - limit)
    keep = max(0, limit - len(note))
    head = keep // 2
    return text[:head] + note + text[len(text) - (keep - head) :]


def read_text(path: str | Path | None, limit: int = MAX_FILE_BYTES) -> str:
    """A file's text (undecodable bytes replaced), or '' when it cannot be read."""
    if not path:
        return ""
    try:
        with Path(path).open("rb") as fh:
            data = fh.read(limit)
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


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


def _render_message(message: Any, per_message: int) -> str:
    if not isinstance(message, dict):
        return clip(str(message), per_message)
    role = str(message.get("role", "?"))
    return f"[{role}]\n{clip(str(message.get('content', '')), per_message)}"


def _render_entry(entry: Any, per_message: int) -> Iterable[str]:
    if not isinstance(entry, dict):
        yield clip(json.dumps(entry, default=str), per_message)
        return
    messages = entry.get("messages")
    if isinstance(messages, list) and messages:
        for message in messages:
            yield _render_message(message, per_message)
    else:
        for key in ("action", "observation", "llm_error", "format_error"):
            if entry.get(key) is not None:
                yield f"[{key}]\n{clip(json.dumps(entry[key], default=str) if not isinstance(entry[key], str) else entry[key], per_message)}"
    for key in ("llm_error", "format_error"):
        if entry.get(key) and messages:
            yield f"[{key}] {clip(str(entry[key]), 500)}"


def render_trajectory(path: str | Path | None, limit: int, per_message: int = 3000) -> str:
    """A readable transcript of a `trajectory.jsonl` file, clipped to `limit` characters.

    The system prompt (the agent's own prompt, already in the source excerpt) is skipped.
    """
    raw = read_text(path)
    if not raw:
        return "(no trajectory recorded)"
    parts: list[str] = []
    for line in raw.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            parts.append(clip(line, per_message))
            continue
        for text in _render_entry(entry, per_message):
            if text.startswith("[system]"):
                continue
            parts.append(text)
    return clip("\n\n".join(parts), limit)


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
