"""A tiny stdlib client of the run's LLM gateway (OpenAI chat-completions over HTTP).

The gateway listens on a unix socket (a filesystem path) and/or loopback TCP
(`http://127.0.0.1:PORT`); `chat()` speaks to either. Every call carries the
`X-HGM-Tags` header so the gateway records it with (node, task, purpose).
"""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Mapping, Sequence
from urllib.parse import urlsplit

TAGS_HEADER = "X-HGM-Tags"


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


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    """A connection to the gateway and the path prefix of its API."""
    if url.startswith("unix:"):
        url = url[len("unix:") :]
    if url.startswith("/"):
        return _UnixConnection(url, timeout), ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "") or not parts.hostname:
        raise LLMCallError(f"unsupported gateway URL {url!r}: give a socket path or http://HOST:PORT")
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    return conn, parts.path.rstrip("/")


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
    body: dict[str, object] = {"model": model, "messages": [dict(m) for m in messages]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    headers = {
        "Content-Type": "application/json",
        TAGS_HEADER: json.dumps({k: str(v) for k, v in tags.items() if v is not None}),
    }
    conn, prefix = _connection(url, timeout)
    path = prefix + ("/v1/chat/completions" if not prefix.endswith("/v1") else "/chat/completions")
    try:
        conn.request("POST", path, body=json.dumps(body).encode("utf-8"), headers=headers)
        response = conn.getresponse()
        raw = response.read()
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        raise LLMCallError(f"gateway at {url} did not answer: {exc}") from None
    finally:
        conn.close()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise LLMCallError(f"gateway answered HTTP {status} with a non-JSON body", status) from None
    if status != 200:
        message = data.get("error", {}).get("message") if isinstance(data, dict) else None
        raise LLMCallError(f"gateway answered HTTP {status}: {message or raw[:200]!r}", status)
    try:
        text = data["choices"][0]["message"]["content"] or ""
        usage = data.get("usage") or {}
        return ChatReply(
            text=str(text),
            prompt_tokens=int(usage.get("prompt_tokens", 0) or 0),
            completion_tokens=int(usage.get("completion_tokens", 0) or 0),
        )
    except (KeyError, IndexError, TypeError, ValueError):
        raise LLMCallError("gateway reply lacks choices[0].message.content", status) from None
