"""Readable, bounded text out of an agent attempt's files (trajectory, patch, logs).

Everything read here was written by an agent, i.e. is untrusted: files may be missing,
huge, not UTF-8 or not JSON; every reader degrades to a short note instead of raising,
and every text is cut to a size budget (head and tail kept). The diagnosis of an
expansion (`hgm.evolve.context`) and the summaries of attempts (`hgm.evaluation.summary`)
both read attempts through these functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

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
