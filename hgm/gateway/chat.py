"""hgm's own model calls (diagnosis, attempt summaries, operators, judge) through the gateway.

Transport is `hgm.gateway.client`; this module turns its (status, body) answers into a
`ChatReply` or an `LLMCallError`, and `ask_json` asks for a JSON reply that a caller's
parser validates, retrying with the validation error (model output is untrusted).
"""

from __future__ import annotations

import http.client
import json
import re
from dataclasses import dataclass, field
from typing import Callable, Generic, Mapping, Sequence, TypeVar

from hgm.gateway import client


class LLMCallError(RuntimeError):
    """The gateway refused or failed the call; `status` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ChatReply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


def chat(
    url: str,
    model: str,
    messages: Sequence[Mapping[str, str]],
    tags: Mapping[str, object],
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    timeout: float = 600.0,
    response_format: Mapping[str, object] | None = None,
) -> ChatReply:
    """One chat-completions call through the gateway; raise LLMCallError on any failure."""
    if url.startswith("unix:"):
        url = url[len("unix:") :]
    params = {k: v for k, v in (("max_tokens", max_tokens), ("temperature", temperature),
                                ("response_format", response_format)) if v is not None}
    try:
        status, body = client.chat(
            url, [dict(m) for m in messages], model=model,
            tags={k: v for k, v in tags.items() if v is not None}, timeout=timeout, **params,
        )
    except (OSError, http.client.HTTPException) as exc:
        raise LLMCallError(f"gateway at {url} did not answer: {exc}") from None
    if not isinstance(body, dict):
        raise LLMCallError(f"gateway answered HTTP {status} with a non-JSON body", status)
    if status != 200:
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        raise LLMCallError(f"gateway answered HTTP {status}: {message or str(body)[:200]!r}", status)
    try:
        usage = body.get("usage") or {}
        return ChatReply(
            text=str(client.reply_text(body) or ""),
            prompt_tokens=int(usage.get("prompt_tokens", 0) or 0),
            completion_tokens=int(usage.get("completion_tokens", 0) or 0),
        )
    except (KeyError, IndexError, TypeError, ValueError):
        raise LLMCallError("gateway reply lacks choices[0].message.content", status) from None


ChatFn = Callable[[Sequence[Mapping[str, str]]], ChatReply]
"""One model call with the caller's tags already bound; raises LLMCallError."""


def json_format(schema: Mapping[str, object] | None = None) -> dict[str, object]:
    """The `response_format` of a call that wants a JSON reply (matching `schema` when given)."""
    if schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "reply", "schema": dict(schema)}}


ChatFactory = Callable[[Mapping[str, object], int, "Mapping[str, object] | None"], ChatFn]


def gateway_chat(url: str, model: str, timeout: float = 600.0) -> ChatFactory:
    """A factory of tagged JSON-reply calls through the gateway at `url`: `(tags, max_tokens, schema) -> ChatFn`."""

    def factory(tags: Mapping[str, object], max_tokens: int, schema: Mapping[str, object] | None = None) -> ChatFn:
        return lambda messages: chat(url, model, messages, tags, max_tokens=max_tokens, timeout=timeout,
                                     response_format=json_format(schema))

    return factory
T = TypeVar("T")
_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_json(text: str) -> dict:
    """The first JSON object in `text` (fenced or bare); raise ValueError if none parses."""
    candidates = [m.group(1) for m in _FENCE_RE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate.strip())
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            return data
    raise ValueError("the reply contains no JSON object")


@dataclass
class Answer(Generic[T]):
    """What `ask_json` got: the parsed value (None when every try failed) and why not."""

    value: T | None
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def error(self) -> str:
        """The errors in one line ('' when the call succeeded)."""
        return "; ".join(self.errors) if self.value is None else ""


def ask_json(
    chat_fn: ChatFn,
    messages: Sequence[Mapping[str, str]],
    parse: Callable[[str], T],
    retries: int = 1,
    format_hint: str = "",
) -> Answer[T]:
    """Ask; `parse` the reply (it raises ValueError when the reply is unusable); on a bad
    reply retry `retries` times, telling the model what was wrong.

    A refused call (402: a spent budget) is not retried.
    """
    messages = [dict(m) for m in messages]
    answer: Answer[T] = Answer(None)
    for _ in range(1 + max(0, retries)):
        answer.attempts += 1
        try:
            reply = chat_fn(messages)
        except LLMCallError as exc:
            answer.errors.append(f"call failed: {exc}")
            if exc.status == 402:
                break
            continue
        answer.prompt_tokens += reply.prompt_tokens
        answer.completion_tokens += reply.completion_tokens
        try:
            answer.value = parse(reply.text)
            return answer
        except ValueError as exc:
            answer.errors.append(f"bad reply: {exc}")
            messages = messages[:2] + [
                {"role": "assistant", "content": reply.text[:4000]},
                {"role": "user", "content": f"Your reply was unusable: {exc}. {format_hint}".strip()},
            ]
    return answer
