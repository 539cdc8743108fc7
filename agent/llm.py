"""A small OpenAI chat-completions client over stdlib http.client.

The model is reached only through HGM_LLM_URL (a unix socket path, `unix:PATH`, or
`http://127.0.0.1:PORT[/v1]`) and HGM_LLM_MODEL (an alias the gateway resolves).
HGM_LLM_TAGS, if set, is a JSON object passed through in the `X-HGM-Tags` header so the
gateway can tag the call. No API key is ever read or sent.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_RESPONSE_BYTES = 50_000_000
STOP_KINDS = ("budget", "refused")


class LLMError(Exception):
    """A failed model call. `kind` is "budget", "refused" or "failed"."""

    def __init__(self, message: str, kind: str = "failed", retryable: bool = True) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable and kind not in STOP_KINDS


@dataclass(frozen=True)
class Reply:
    content: str
    usage: dict = field(default_factory=dict)
    finish_reason: str | None = None


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix stream socket."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def parse_url(url: str) -> tuple[str, str, int, str]:
    """Return (scheme, host or socket path, port, request path) for HGM_LLM_URL."""
    if url.startswith(("http://", "https://")):
        parts = urlsplit(url)
        base = parts.path.rstrip("/")
        path = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        default_port = 443 if parts.scheme == "https" else 80
        return parts.scheme, parts.hostname or "127.0.0.1", parts.port or default_port, path
    socket_path = url[len("unix://"):] if url.startswith("unix://") else url
    socket_path = socket_path[len("unix:"):] if socket_path.startswith("unix:") else socket_path
    return "unix", socket_path, 0, "/v1/chat/completions"


def error_of(status: int, body: bytes) -> LLMError:
    """Turn an HTTP error answer (OpenAI-style error JSON or not) into an LLMError."""
    try:
        error = json.loads(body).get("error") or {}
        if not isinstance(error, dict):
            error = {"message": str(error)}
    except (ValueError, AttributeError):
        error = {"message": body[:500].decode("utf-8", errors="replace")}
    code = f"{error.get('code') or ''} {error.get('type') or ''}".lower()
    text = f"HTTP {status}: {str(error.get('message') or '')[:1000]} [{code.strip()}]"
    if status == 402 or "budget" in code or "quota" in code:
        return LLMError(text, "budget")
    if status in (401, 403):
        return LLMError(text, "refused")
    return LLMError(text, retryable=status >= 500 or status in (408, 409, 429))


class LLMClient:
    """Calls /v1/chat/completions; retries transient failures `attempts` times in all."""

    def __init__(self, url: str, model: str, tags: str | None = None, timeout: float = 600.0,
                 attempts: int = 3, backoff: float = 1.0) -> None:
        self.url = url
        self.model = model
        self.tags = tags
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.scheme, self.host, self.port, self.path = parse_url(url)

    @classmethod
    def from_env(cls, environ: dict[str, str], timeout: float = 600.0, attempts: int = 3) -> "LLMClient":
        """Build from HGM_LLM_URL / HGM_LLM_MODEL / HGM_LLM_TAGS; ValueError if unusable."""
        url = environ.get("HGM_LLM_URL", "").strip()
        if not url:
            raise ValueError("HGM_LLM_URL is not set (a unix socket path or http://127.0.0.1:PORT)")
        tags = environ.get("HGM_LLM_TAGS")
        if tags:
            try:
                parsed = json.loads(tags)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                raise ValueError("HGM_LLM_TAGS must be a JSON object, e.g. '{\"task\": \"t1\"}'")
            tags = json.dumps(parsed, separators=(",", ":"))
        model = environ.get("HGM_LLM_MODEL", "").strip() or "default"
        return cls(url, model, tags or None, timeout, attempts)

    def chat(self, messages: list[dict]) -> Reply:
        """Return the model's reply to `messages`, or raise LLMError."""
        for attempt in range(max(self.attempts, 1)):
            try:
                return self._call(messages)
            except LLMError as err:
                if not err.retryable or attempt + 1 >= self.attempts:
                    raise
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        if self.scheme == "unix":
            return UnixHTTPConnection(self.host, self.timeout)
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _call(self, messages: list[dict]) -> Reply:
        body = json.dumps({"model": self.model, "messages": messages}).encode()
        headers = {"Content-Type": "application/json"}
        if self.tags:
            headers["X-HGM-Tags"] = self.tags
        conn = self._connection()
        try:
            conn.request("POST", self.path, body, headers)
            response = conn.getresponse()
            data = response.read(MAX_RESPONSE_BYTES)
        except (OSError, http.client.HTTPException) as err:
            raise LLMError(f"cannot reach the model at {self.url}: {err!r}") from err
        finally:
            conn.close()
        if response.status != 200:
            raise error_of(response.status, data)
        return parse_reply(data)


def parse_reply(data: bytes) -> Reply:
    """Read content and usage out of a chat-completions response body."""
    try:
        payload = json.loads(data)
        choice = payload["choices"][0]
        message = choice.get("message") or {}
        content = message.get("content") or ""
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        usage = {k: count(usage.get(k)) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
        raise LLMError(f"malformed response from the model server: {err!r}") from err
    text = str(content).encode("utf-8", errors="replace").decode("utf-8")  # drop lone surrogates
    return Reply(text, usage, choice.get("finish_reason"))


def count(value: object) -> int:
    """A token count from untrusted JSON: a non-negative int, or 0."""
    try:
        return max(int(value), 0)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0
