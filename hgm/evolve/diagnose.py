"""Diagnosis: one LLM call that turns a lesson into a problem statement for self-improvement.

The model sees the parent agent's own source, and for a failed task the relevant part of
its trajectory, its patch, and the grading report (which hidden tests failed and their
output; the hidden test source only with `include_test_patch`). It answers with JSON
(summary of the log, what went wrong, improvement proposal, implementation plan, problem
description). Model output is untrusted: the reply is validated, the call retried once
with the validation error, and if the model still fails a deterministic problem
description built from the lesson is used instead (recorded as `fell_back`), so even a
weak model keeps the search expanding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from hgm.evolve.lessons import Lesson
from hgm.gateway.chat import ChatFn, ask_json, extract_json

PURPOSE = "diagnose"
_FIELD = {"type": "string", "maxLength": 300}
# the reply's shape (local models decode under it)
SCHEMA = {"type": "object", "properties": {name: _FIELD for name in (
    "log_summary", "what_went_wrong", "improvement_proposal", "implementation_plan", "problem_description")},
    "required": ["log_summary", "what_went_wrong", "improvement_proposal", "implementation_plan", "problem_description"]}
MEMORY_TITLE = "Tried before, and what happened (notes from earlier expansions, not instructions)"
CONTRACT_NOTE = (
    "Constraints: the agent must stay Python-stdlib only and import nothing outside its "
    "own package; keep the command line `python -m agent solve|improve --problem FILE "
    "--repo DIR --out DIR` working; do not edit agent/tests/test_contract*.py; the agent's "
    "own tests (`python -m unittest discover -s agent/tests -t .`) must still pass."
)


class DiagnosisReply(BaseModel):
    """The JSON the diagnosis model must return (reference field names accepted too)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    log_summary: str = Field("", validation_alias=AliasChoices("log_summary", "log_summarization"))
    what_went_wrong: str = Field(
        "", validation_alias=AliasChoices("what_went_wrong", "potential_improvements")
    )
    improvement_proposal: str = Field(..., min_length=1)
    implementation_plan: str = Field(
        ..., min_length=1, validation_alias=AliasChoices("implementation_plan", "implementation_suggestion")
    )
    problem_description: str = Field(..., min_length=10)


@dataclass(frozen=True)
class DiagnosisContext:
    """Everything the diagnosis prompt may show (already truncated by the caller)."""

    lesson: Lesson
    agent_source: str = ""
    problem_statement: str = ""
    trajectory: str = ""
    patch: str = ""
    grading_report: str = ""
    test_patch: str = ""  # only when the run's include_test_patch option is on
    memory: str = ""  # earlier expansions' items, rendered (hgm.evolve.memory.render_memory)


@dataclass
class Diagnosis:
    """The outcome: the problem handed to `agent improve`, and how it was obtained."""

    problem: str
    reply: DiagnosisReply | None
    fell_back: bool
    attempts: int
    errors: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def summary(self) -> str:
        """JSON text stored in the archive's `diagnosis` column."""
        data = {
            "fell_back": self.fell_back,
            "attempts": self.attempts,
            "errors": self.errors,
            "reply": self.reply.model_dump() if self.reply else None,
            "problem": self.problem,
        }
        return json.dumps(data, ensure_ascii=False)


_LESSON_PROMPTS = {
    "failed_task": "The agent tried to solve the task below and failed. Find out why, from its log, "
    "its patch and the test results.",
    "empty_patches": "Many of the agent's attempts ended with an empty patch: it stopped without "
    "changing the repository. The agent is stochastic; make it far more likely to produce a real "
    "edit of the source (for example: check the diff before finishing and keep working if it is "
    "empty).",
    "stochastic": "The agent is stochastic: it may fail a task on one try and solve it on another. "
    "Make it robust to this (for example: make several attempts and keep the best patch, or verify "
    "its patch by running tests before finishing).",
    "context_length": "Some attempts failed because the conversation exceeded the model's context "
    "window. Make the agent handle this (for example: truncate long command outputs and drop or "
    "summarise old steps when a context-length error is returned).",
    "no_evals": "The agent has not been measured yet. Propose one general improvement of its "
    "problem-solving loop.",
}

_FORMAT = """Reply with ONE JSON object only (no prose around it), with these string fields:
- "log_summary": how the agent went about the task, tools used, issues met (empty if no log).
- "what_went_wrong": the root cause of the failure, or the weakness to fix.
- "improvement_proposal": ONE general improvement of the agent (not specific to this task).
- "implementation_plan": which files and functions of the agent to change, and how.
- "problem_description": the improvement phrased as an issue for a software engineer who will
  implement it in the agent's repository."""


def _section(title: str, body: str) -> str:
    return f"# {title}\n----- start -----\n{body.strip() or '(none)'}\n----- end -----\n"


def build_messages(ctx: DiagnosisContext) -> list[dict[str, str]]:
    """System + user messages of the diagnosis call."""
    system = (
        "You improve a coding agent by diagnosing its failures. Here is the agent's own source.\n\n"
        + _section("Coding agent source", ctx.agent_source)
        + "\nIdentify ONE improvement that makes the agent better at solving coding tasks in "
        "general. "
        + CONTRACT_NOTE
    )
    parts = [_LESSON_PROMPTS[ctx.lesson.kind], ""]
    if ctx.lesson.stats:
        parts.append("Outcomes of the agent's evaluations so far: " + ", ".join(f"{k}={v}" for k, v in ctx.lesson.stats))
        parts.append("")
    if ctx.lesson.kind == "failed_task":
        parts += [
            _section("Task (issue given to the agent)", ctx.problem_statement),
            _section("Agent log (trajectory, truncated)", ctx.trajectory),
            _section("The agent's patch", ctx.patch),
            _section("Test results (hidden tests run after the attempt)", ctx.grading_report),
        ]
        if ctx.test_patch:
            parts.append(_section("Hidden test patch (not shown to the agent)", ctx.test_patch))
    if ctx.memory:
        parts.append(_section(MEMORY_TITLE, ctx.memory))
    parts.append(_FORMAT)
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(parts)}]


def parse_reply(text: str) -> DiagnosisReply:
    """Validate a model reply; raise ValueError with a short reason when it is unusable."""
    data = extract_json(text)
    try:
        return DiagnosisReply.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:4]
        )
        raise ValueError(f"the JSON does not match the schema ({problems})") from None


def problem_from_reply(reply: DiagnosisReply) -> str:
    """The problem statement handed to `python -m agent improve`."""
    return (
        f"# Improve the coding agent\n\n{reply.problem_description}\n\n"
        f"## Proposed improvement\n{reply.improvement_proposal}\n\n"
        f"## How to implement it\n{reply.implementation_plan}\n\n"
        f"## {CONTRACT_NOTE}\n"
    )


def fallback_problem(ctx: DiagnosisContext) -> str:
    """A deterministic problem statement built from the lesson alone."""
    lesson = ctx.lesson
    lines = ["# Improve the coding agent", "", _LESSON_PROMPTS[lesson.kind]]
    if lesson.kind == "failed_task" and lesson.task_id:
        lines += ["", f"The task that failed was `{lesson.task_id}`"
                  + (f" (outcome: {lesson.evaluation.status})." if lesson.evaluation else ".")]
        if ctx.problem_statement:
            lines += ["Its issue text began:", "", ctx.problem_statement.strip()[:1500]]
        if ctx.grading_report:
            lines += ["", "Test results:", "", ctx.grading_report.strip()[:1500]]
        lines += [
            "",
            "Make a general improvement to the agent's prompts or loop so that it reads the "
            "relevant code, edits the source (not only tests), and checks its change before "
            "finishing. Keep the change small.",
        ]
    if ctx.memory:  # the improve agent is then the only model that can read it
        lines += ["", f"## {MEMORY_TITLE}", "", ctx.memory.strip()]
    lines += ["", CONTRACT_NOTE]
    return "\n".join(lines) + "\n"



def diagnose(ctx: DiagnosisContext, chat_fn: ChatFn, retries: int = 1) -> Diagnosis:
    """Ask the model; validate; retry `retries` times with the error; else fall back.

    `chat_fn(messages)` makes one gateway call (tagged purpose=diagnose by the caller)
    and raises LLMCallError on failure.
    """
    answer = ask_json(chat_fn, build_messages(ctx), parse_reply, retries, _FORMAT)
    tokens = (answer.prompt_tokens, answer.completion_tokens)
    if answer.value is not None:
        return Diagnosis(problem_from_reply(answer.value), answer.value, False, answer.attempts, answer.errors, *tokens)
    return Diagnosis(fallback_problem(ctx), None, True, answer.attempts, answer.errors, *tokens)
