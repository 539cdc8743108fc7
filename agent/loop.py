"""The agent loop: ask the model, run its one command, show it the result, repeat.

Every step appends to one plain list of messages. The loop stops when the model submits,
or on a limit (steps, tokens), a budget refusal, or repeated model failures. Nothing the
model sends can make it raise.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

from . import prompts
from .actions import Action, FormatError, parse_action
from .llm import LLMClient, LLMError
from .shell import Shell


@dataclass(frozen=True)
class Limits:
    max_steps: int = 30
    command_timeout: float = 60.0
    max_output: int = 10_000
    max_tokens: int = 200_000
    max_reply_chars: int = 100_000
    max_failed_calls: int = 3  # model failures in a row (after retries) that end the attempt


@dataclass
class Outcome:
    exit_reason: str  # submitted | step_limit | cost_limit | model_refused | error
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    detail: str = ""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def count_tokens(outcome: Outcome, usage: dict, messages: list[dict], reply: str) -> dict:
    """Add the call's usage to `outcome` (estimated at 4 characters a token if missing)."""
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    if not prompt and not completion:
        total = usage.get("total_tokens", 0)
        prompt = total or sum(len(str(m.get("content", ""))) for m in messages) // 4
        completion = 0 if total else len(reply) // 4
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "estimated": not total}
    outcome.prompt_tokens += prompt
    outcome.completion_tokens += completion
    return usage


def read_reply(content: str, limits: Limits) -> tuple[str, Action | None, str | None]:
    """Return (the text to keep in the history, the action or None, the format error or None)."""
    if len(content) > limits.max_reply_chars:
        kept = content[: limits.max_reply_chars // 2] + "\n[... reply cut by the agent ...]"
        return kept, None, prompts.TOO_LONG.format(length=len(content), limit=limits.max_reply_chars)
    try:
        return content, parse_action(content), None
    except FormatError as err:
        return content, None, str(err)


def limit_reached(outcome: Outcome, limits: Limits) -> bool:
    if outcome.steps >= limits.max_steps:
        outcome.exit_reason = "step_limit"
        return True
    if outcome.tokens >= limits.max_tokens:
        outcome.exit_reason, outcome.detail = "cost_limit", f"{outcome.tokens} tokens used"
        return True
    return False


def run(messages: list[dict], llm: LLMClient, shell: Shell, limits: Limits,
        record: Callable[[dict], None], outcome: Outcome) -> Outcome:
    """Run the loop on `messages` (system + task), counting into `outcome`, and return it.

    `record` gets one dict per step; its `messages` are those new since the previous record.
    """
    new = list(messages)
    failures = 0
    while not limit_reached(outcome, limits):
        outcome.steps += 1
        entry: dict = {"step": outcome.steps, "time": time.time(), "action": None, "observation": None}
        started = time.monotonic()
        try:
            reply = llm.chat(messages)
        except LLMError as err:
            entry.update(messages=new, llm_error=str(err), llm_seconds=time.monotonic() - started)
            new = []
            record(entry)
            failures += 1
            stop = {"budget": "cost_limit", "refused": "model_refused"}.get(err.kind)
            if stop or failures >= limits.max_failed_calls:
                outcome.exit_reason, outcome.detail = stop or "error", str(err)
                return outcome
            continue
        failures = 0
        entry["llm_seconds"] = time.monotonic() - started
        entry["tokens"] = count_tokens(outcome, reply.usage, messages, reply.content)
        kept, action, error = read_reply(reply.content, limits)
        messages.append({"role": "assistant", "content": kept})
        new.append(messages[-1])
        if action is not None and action.is_submit:
            entry.update(action="submit", messages=new)
            record(entry)
            outcome.exit_reason = "submitted"
            return outcome
        if action is None:
            entry["format_error"] = error
            answer = prompts.FORMAT_ERROR.format(error=error)
        else:
            obs = shell.run(action.command)
            entry["action"], entry["observation"] = action.command, asdict(obs)
            answer = prompts.observation(obs.exit_code, obs.timed_out, obs.cwd, obs.output, limits.command_timeout)
        left = limits.max_steps - outcome.steps
        if 0 < left <= 3:
            answer += prompts.STEPS_LEFT.format(left=left)
        messages.append({"role": "user", "content": answer})
        new.append(messages[-1])
        entry.update(messages=new, step_seconds=time.monotonic() - started)
        new = []
        record(entry)
    return outcome
