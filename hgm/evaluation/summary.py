"""Compress one attempt before it is reused: trajectory + patch -> a small, validated JSON summary.

Long observations are cut to head and tail (`transcript.render_trajectory`), then one
model call (purpose `summarize`) writes the summary: approach, files, key changes,
strategy, assumptions and the outcome of the agent's own checks. The reply is
validated and the call retried once with the validation error; when it still fails the
attempt gets a plain summary built from its patch and exit reason, and the failure is
returned (the caller logs it) so that the generation goes on. Every field is clipped, so
an operator that reads many summaries still sees a bounded prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hgm.evaluation.patches import file_changes
from hgm.evaluation.transcript import clip, render_trajectory
from hgm.gateway.chat import ChatFn, ask_json, extract_json

PURPOSE = "summarize"
FIELD_CHARS = 400  # each text field of a summary
MAX_FILES = 12
_TEXT = {"type": "string", "maxLength": 240}
# the reply's shape (local models decode under it: bounded strings always fit the reply size)
SCHEMA = {"type": "object", "required": ["approach", "files", "key_changes", "strategy", "assumptions", "checks"],
          "properties": {"approach": _TEXT, "files": {"type": "array", "maxItems": 8,
                                                       "items": {"type": "string", "maxLength": 100}},
                         "key_changes": _TEXT, "strategy": _TEXT, "assumptions": _TEXT, "checks": _TEXT}}

_FORMAT = """Reply with ONE JSON object only, with these fields:
- "approach": how the agent went about the task, in one or two sentences;
- "files": the files it changed (list of paths);
- "key_changes": what the changes do;
- "strategy": how it located the problem and how it tried to verify its fix;
- "assumptions": what it assumed about the intended behaviour;
- "checks": what its own checks (scripts, tests it ran) showed at the end."""


class AttemptSummary(BaseModel):
    """What an operator and the judge read of an attempt."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    approach: str = Field(..., min_length=3)
    files: list[str] = Field(default_factory=list)
    key_changes: str = ""
    strategy: str = ""
    assumptions: str = ""
    checks: str = ""

    @field_validator("files", mode="before")
    @classmethod
    def _file_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
        return value

    def clipped(self) -> dict[str, Any]:
        """The summary with every field cut to its size budget."""
        data = self.model_dump()
        for key, value in data.items():
            data[key] = [clip(str(v), 200) for v in value[:MAX_FILES]] if isinstance(value, list) else clip(value, FIELD_CHARS)
        return data


@dataclass(frozen=True)
class SummaryResult:
    """The summary of one attempt; `error` says why it is the plain fallback ('' when not)."""

    summary: dict[str, Any]
    error: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


def parse_summary(text: str) -> dict[str, Any]:
    """Validate a model reply; raise ValueError with a short reason when it is unusable."""
    try:
        return AttemptSummary.model_validate(extract_json(text)).clipped()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:4])
        raise ValueError(f"the JSON does not match the schema ({problems})") from None


def build_messages(problem: str, trajectory: str, patch: str, exit_reason: str) -> list[dict[str, str]]:
    """System + user messages of one summary call."""
    system = ("You summarise one attempt of a coding agent at a software issue, so that later attempts "
              "can learn from it. Be factual and short; do not judge whether the fix is right.")
    user = (f"# Issue\n{problem}\n\n# The attempt (transcript, long outputs cut)\n{trajectory}\n\n"
            f"# Its patch\n{patch or '(empty: it changed nothing)'}\n\n# How it ended\n{exit_reason or 'unknown'}\n\n"
            + _FORMAT)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def fallback_summary(patch: str, exit_reason: str, error: str) -> dict[str, Any]:
    """A plain summary from what needs no model: the files the patch changes and how it ended."""
    changes = file_changes(patch)
    lines = sum(len(c.added) + len(c.removed) for c in changes)
    return {
        "approach": clip(f"(no model summary: {error})", FIELD_CHARS),
        "files": [c.path for c in changes][:MAX_FILES],
        "key_changes": f"{lines} changed lines in {len(changes)} files" if changes else "no change",
        "strategy": "", "assumptions": "", "checks": f"the attempt ended with {exit_reason or 'unknown'}",
    }


def summarize_attempt(
    chat_fn: ChatFn,
    problem: str,
    trajectory_path: Path | str | None,
    patch: str,
    exit_reason: str,
    limit: int,
    retries: int = 1,
) -> SummaryResult:
    """Summarise one attempt in a bounded prompt of about `limit` characters (+ the format)."""
    trajectory = render_trajectory(trajectory_path, limit // 2, per_message=max(300, limit // 8))
    messages = build_messages(clip(problem, limit // 4), trajectory, clip(patch, limit // 4), exit_reason)
    answer = ask_json(chat_fn, messages, parse_summary, retries, _FORMAT)
    tokens = {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens}
    if answer.value is not None:
        return SummaryResult(answer.value, **tokens)
    return SummaryResult(fallback_summary(patch, exit_reason, answer.error), answer.error, **tokens)
