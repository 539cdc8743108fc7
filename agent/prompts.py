"""Everything the agent says to the model; the texts are agent/templates/NAME.txt."""

from __future__ import annotations

import os

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def text(name: str, **fields: object) -> str:
    """Return templates/NAME.txt with its {placeholders} filled from `fields`."""
    with open(os.path.join(TEMPLATES, name + ".txt"), encoding="utf-8") as f:
        return f.read().rstrip("\n").format(**fields)


def initial_messages(mode: str, problem: str, repo: str, replace_tool: str, timeout: float,
                     max_output: int, guidance: str = "") -> list[dict]:
    """Return the system and task messages that open an attempt (mode: solve or improve)."""
    system = text("system", timeout=timeout, max_output=max_output, replace_tool=replace_tool)
    task = text(mode, repo=repo, problem=problem)
    if guidance.strip():
        task += "\n\n" + text("guidance", guidance=guidance.strip())
    return [{"role": "system", "content": system}, {"role": "user", "content": task}]
