"""hgm's own model calls (diagnosis) through the run's LLM gateway, as typed replies.

Transport is `hgm.gateway.client`; this module only turns its (status, body) answers
into a `ChatReply` or an `LLMCallError`.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Mapping, Sequence

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
) -> ChatReply:
    """One chat-completions call through the gateway; raise LLMCallError on any failure."""
    if url.startswith("unix:"):
        url = url[len("unix:") :]
    params = {k: v for k, v in (("max_tokens", max_tokens), ("temperature", temperature)) if v is not None}
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
