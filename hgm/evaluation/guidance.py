"""Level-1 operators: the guidance each new attempt of an evaluation starts from.

The first generation uses fixed strategy variants (the first attempt none: it is the agent
alone). Later attempts get guidance an operator wrote with one model call from summaries
of earlier attempts and their selection checks:
- **revise** (one attempt): a deliberately different strategy;
- **recombine** (the two best attempts so far, by score): what each got right, their
  shared blind spots, and how to combine them;
- **refine** (all attempts, best first, at most `MAX_BRIEFS`): the blind spots to avoid and
  the plan for the best one, aiming at the smallest correct diff.
Every prompt carries the task's real problem statement. The reply is validated and the
call retried once; when it still fails, guidance is composed from the summaries without
the model and the failure is returned to be logged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from hgm.evaluation.transcript import clip
from hgm.gateway.chat import ChatFn, ask_json, extract_json

OPERATORS = ("revise", "recombine", "refine")
GUIDANCE_CHARS = 1500
MAX_BRIEFS = 6  # refine reads at most this many summaries: bounded however many generations ran
VARIANTS = (
    "Start by writing a small script that reproduces the problem and run it; then fix the library code "
    "and run the script again before you submit.",
    "Find the relevant code first: search the repository for the names the issue mentions (grep -rn) and "
    "read the whole function before you edit it.",
    "Make the smallest change that fixes the issue, in the library code (not in the tests); do not refactor.",
    "Read the existing tests of the affected module first to learn the intended behaviour; then fix the "
    "code and run those tests.",
)
SCHEMA = {"type": "object", "required": ["guidance"],
          "properties": {"guidance": {"type": "string", "minLength": 20, "maxLength": 900}}}
_FORMAT = ('Reply with ONE JSON object only: {"guidance": "<at most 150 words addressed to the agent: '
           'what to do first, what to avoid, how to check the fix>"}')
_TASKS = {
    "revise": "An earlier attempt at this issue is summarised below. Write guidance for a NEW attempt that takes "
              "a deliberately different strategy: another entry point into the code, another way to reproduce "
              "the problem, or, if the attempt ran out of steps or time, a minimal direct approach.",
    "recombine": "The two best attempts so far (ranked by their checks) are summarised below. Work out what each "
                 "got right and the blind spots they share, then write guidance for a NEW attempt that combines "
                 "their strengths and avoids those blind spots.",
    "refine": "All attempts so far are summarised below, best first. Name the blind spots to avoid, and write "
              "guidance for a NEW attempt that follows the plan of the best attempt and aims at the smallest "
              "correct diff.",
}


@dataclass(frozen=True)
class AttemptBrief:
    """What an operator reads of one earlier attempt."""

    index: int
    summary: Mapping[str, Any]
    checks: str  # `Features.describe()`
    exit_reason: str = ""

    def render(self) -> str:
        return (f"## Attempt {self.index} (ended: {self.exit_reason or 'unknown'})\n"
                f"Summary: {json.dumps(dict(self.summary), ensure_ascii=False)}\nChecks: {self.checks}")


@dataclass(frozen=True)
class GuidanceResult:
    """The guidance text; `error` says why it was composed without the model ('' when not)."""

    text: str
    error: str = ""


def variant(position: int) -> str | None:
    """First-generation guidance of the attempt at `position` (0-based): none for the first."""
    return None if position == 0 else VARIANTS[(position - 1) % len(VARIANTS)]


def build_messages(operator: str, problem: str, briefs: Sequence[AttemptBrief]) -> list[dict[str, str]]:
    """System + user messages of one operator call."""
    system = ("You coach a coding agent that attempts a software issue several times. Each attempt starts from "
              "scratch on a clean repository; your guidance goes into its first prompt.")
    shown = "\n\n".join(b.render() for b in briefs[:MAX_BRIEFS])
    user = f"# Issue\n{problem}\n\n# Task\n{_TASKS[operator]}\n\n# Earlier attempts\n{shown}\n\n{_FORMAT}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_guidance(text: str) -> str:
    """The guidance of a model reply; raise ValueError when it is unusable."""
    value = extract_json(text).get("guidance")
    if not isinstance(value, str) or len(value.strip()) < 20:
        raise ValueError('"guidance" must be a text of at least 20 characters')
    return clip(value.strip(), GUIDANCE_CHARS)


def fallback_guidance(operator: str, briefs: Sequence[AttemptBrief]) -> str:
    """Guidance composed from the summaries alone (when the model failed)."""

    def line(b: AttemptBrief) -> str:
        files = ", ".join(b.summary.get("files") or []) or "no files"
        return f"attempt {b.index} ({clip(str(b.summary.get('approach', '')), 200)}; changed {files}; {b.checks})"

    if operator == "revise":
        text = (f"An earlier {line(briefs[0])} did not settle the issue. Take a different route: reach the code "
                "from another entry point, reproduce the problem another way, and keep the change minimal.")
    elif operator == "recombine":
        text = (f"Two earlier attempts: {line(briefs[0])}; and {line(briefs[1])}. Combine what worked in both "
                "and check the fix by running the code before you submit.")
    else:
        text = (f"The best attempt so far: {line(briefs[0])}. Follow its plan, avoid what failed in the others, "
                "and aim at the smallest correct diff.")
    return clip(text, GUIDANCE_CHARS)


def write_guidance(
    operator: str, chat_fn: ChatFn, problem: str, briefs: Sequence[AttemptBrief], retries: int = 1
) -> GuidanceResult:
    """Guidance for a new attempt from `briefs` (revise: 1, recombine: 2, refine: best first)."""
    if operator not in OPERATORS:
        raise ValueError(f"unknown operator {operator!r}; expected one of {', '.join(OPERATORS)}")
    answer = ask_json(chat_fn, build_messages(operator, problem, briefs), parse_guidance, retries, _FORMAT)
    if answer.value is not None:
        return GuidanceResult(answer.value)
    return GuidanceResult(fallback_guidance(operator, briefs), answer.error)
