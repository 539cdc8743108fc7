"""The agent loop: ask the model, run its one command, show it the result, repeat."""

from __future__ import annotations

import time
from typing import Any, Callable

from .actions import Action, FormatError, parse_action
from .llm import LLMClient, LLMError
from .prompts import text
from .shell import Shell

MAX_REPLY_CHARS = 100_000
STOPS = {"budget": "cost_limit", "refused": "model_refused"}  # LLMError kinds that end the attempt at once


def read_reply(content: str) -> tuple[str, Action | None, str | None]:
    """Return (the text to keep in the history, the action or None, the format error or None)."""
    if len(content) > MAX_REPLY_CHARS:
        kept = content[: MAX_REPLY_CHARS // 2] + "\n[... reply cut by the agent ...]"
        return kept, None, text("too_long", length=len(content), limit=MAX_REPLY_CHARS)
    try:
        return content, parse_action(content), None
    except FormatError as err:
        return content, None, str(err)


def run(messages: list[dict], llm: LLMClient, shell: Shell, limits: Any,
        record: Callable[[dict], None], outcome: dict) -> None:
    """Continue the conversation `messages` (system + task) until the model submits or a limit is hit.

    `limits` has max_steps, max_tokens, llm_attempts and command_timeout (the command line's).
    `outcome` (exit_reason, steps, tokens, prompt_tokens, completion_tokens, detail) is updated
    as the loop goes. `record` gets one dict per step; its `messages` are those added since the
    previous record. Nothing the model sends makes this raise.
    """
    recorded = failures = 0
    while True:
        if outcome["steps"] >= limits.max_steps:
            outcome["exit_reason"] = "step_limit"
            return
        if outcome["tokens"] >= limits.max_tokens:
            outcome.update(exit_reason="cost_limit", detail=f"{outcome['tokens']} tokens used")
            return
        outcome["steps"] += 1
        entry: dict = {"step": outcome["steps"], "time": time.time(), "action": None, "observation": None}
        try:
            reply = llm.chat(messages)
        except LLMError as err:
            failures += 1
            entry.update(llm_error=str(err), messages=messages[recorded:])
            recorded = len(messages)
            record(entry)
            if err.kind in STOPS or failures >= limits.llm_attempts:  # a failed call costs a step
                outcome.update(exit_reason=STOPS.get(err.kind, "error"), detail=str(err))
                return
            continue
        failures = 0
        outcome["prompt_tokens"] += reply.usage["prompt_tokens"]
        outcome["completion_tokens"] += reply.usage["completion_tokens"]
        outcome["tokens"] = outcome["prompt_tokens"] + outcome["completion_tokens"]
        entry.update(tokens=reply.usage, llm_seconds=round(time.time() - entry["time"], 3))
        kept, action, error = read_reply(reply.content)
        messages.append({"role": "assistant", "content": kept})
        if action is not None and action.is_submit:
            entry.update(action="submit", messages=messages[recorded:])
            record(entry)
            outcome["exit_reason"] = "submitted"
            return
        if action is None:
            entry["format_error"] = error
            answer = text("format_error", error=error)
        else:
            obs = entry["observation"] = shell.run(action.command)
            entry["action"] = action.command
            output = obs["output"] if obs["output"].strip() else "(no output)"
            answer = text("timed_out" if obs["timed_out"] else "observation", exit_code=obs["exit_code"],
                          cwd=obs["cwd"], output=output, timeout=limits.command_timeout)
        if 0 < limits.max_steps - outcome["steps"] <= 3:
            answer += "\n\n" + text("steps_left", left=limits.max_steps - outcome["steps"])
        messages.append({"role": "user", "content": answer})
        entry.update(messages=messages[recorded:], step_seconds=round(time.time() - entry["time"], 3))
        recorded = len(messages)
        record(entry)
