"""A scripted model for end-to-end runs (the gateway's `scripted:` backend).

- solving `hgm-mini__iniconf-1`: applies the real fix with sed, then submits (resolved);
- solving any other task: optionally sleeps (so a run is slow enough to kill), submits
  without a change (empty patch);
- diagnosis: a valid JSON diagnosis;
- self-improvement: appends a harmless comment to agent/prompts.py, runs the agent's own
  tests, submits: a real edit that keeps the tests green.
"""

from __future__ import annotations

import json
from pathlib import Path

SOLVED_TASK = "hgm-mini__iniconf-1"
MARKER = "# self-improvement note: inspect the repository before submitting."


def _bash(thought: str, command: str) -> str:
    return f"THOUGHT: {thought}\n```bash\n{command}\n```"


def write_script(path: Path, *, solve_sleep: float = 0.0) -> Path:
    submit = _bash("done", "submit")
    default = [submit] if not solve_sleep else [_bash("look around", f"sleep {solve_sleep} && ls"), submit]
    diagnosis = {
        "log_summary": "The agent submitted without editing the repository.",
        "what_went_wrong": "It gave up before reading the code.",
        "improvement_proposal": "Remind the agent to inspect the repository before submitting.",
        "implementation_plan": "Append a reminder to agent/prompts.py.",
        "problem_description": "Add a short reminder to the agent's prompts so that it inspects the repository first.",
    }
    script = {
        "default": default,
        SOLVED_TASK: [
            _bash("fix case-insensitive booleans",
                  "sed -i 's/lowered = value.strip()$/lowered = value.strip().lower()/' iniconf/config.py && git diff"),
            submit,
        ],
        "diagnose": [json.dumps(diagnosis)],
        "improve": [
            _bash("add a harmless reminder", f"printf '\\n{MARKER}\\n' >> agent/prompts.py && git diff --stat"),
            submit,
        ],
    }
    path.write_text(json.dumps(script, indent=1), encoding="utf-8")
    return path
