"""A minimal OpenAI chat-completions client. One request per call and no retries: the
gateway retries provider errors itself, and the loop counts a failed call as a failed step."""

from __future__ import annotations

import http.client
import json
import socket
from collections import namedtuple
from urllib.parse import urlsplit

MAX_RESPONSE_BYTES = 50_000_000
Reply = namedtuple("Reply", "content usage")  # usage: prompt_tokens, completion_tokens, total_tokens


class LLMError(Exception):
    """A failed model call; `kind` is "budget" (spent), "refused" (401/403) or "failed"."""

    def __init__(self, message: str, kind: str = "failed") -> None:
        super().__init__(message)
        self.kind = kind


def error_of(status: int, body: bytes) -> LLMError:
    """Turn an HTTP error answer (OpenAI-style error JSON or not) into an LLMError."""
    try:
        error = json.loads(body)["error"]
        code = f"{error.get('code')} {error.get('type')}".lower()
    except (ValueError, KeyError, TypeError, AttributeError):
        code = ""
    text = f"HTTP {status}: {body[:1000].decode('utf-8', errors='replace')}"
    if status == 402 or "budget" in code or "quota" in code:
        return LLMError(text, "budget")
    return LLMError(text, "refused" if status in (401, 403) else "failed")


def parse_reply(data: bytes) -> Reply:
    """Read content and token counts out of a chat-completions response body."""
    try:
        payload = json.loads(data)
        content = (payload["choices"][0].get("message") or {}).get("content") or ""
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
        raise LLMError(f"malformed response from the model server: {err!r}") from err
    counts = {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    text = str(content).encode("utf-8", errors="replace").decode("utf-8")  # drop lone surrogates
    return Reply(text, {k: v if isinstance(v, int) and v > 0 else 0 for k, v in counts.items()})


class LLMClient:
    """Posts chat requests to HGM_LLM_URL: a unix socket path or http://HOST:PORT (optionally ending in /v1)."""

    def __init__(self, url: str, model: str, tags: str | None = None, timeout: float = 600.0) -> None:
        self.url = url
        self.model = model
        self.tags = tags
        self.timeout = timeout
        parts = urlsplit(url)
        if parts.scheme == "http":
            base = parts.path.rstrip("/")
            self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
            self.path = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        else:  # a unix socket path
            self.host, self.port, self.path = url, None, "/v1/chat/completions"

    @classmethod
    def from_env(cls, environ: dict[str, str], timeout: float = 600.0) -> "LLMClient":
        """Build from HGM_LLM_URL, HGM_LLM_MODEL and HGM_LLM_TAGS; ValueError if unusable."""
        url = environ.get("HGM_LLM_URL", "").strip()
        if not url:
            raise ValueError("HGM_LLM_URL is not set (a unix socket path or http://127.0.0.1:PORT)")
        try:
            tags = json.loads(environ.get("HGM_LLM_TAGS") or "{}")
        except ValueError:
            tags = None
        if not isinstance(tags, dict):
            raise ValueError("HGM_LLM_TAGS must be a JSON object, e.g. '{\"task\": \"t1\"}'")
        model = environ.get("HGM_LLM_MODEL", "").strip() or "default"
        return cls(url, model, json.dumps(tags, separators=(",", ":")) if tags else None, timeout)

    def chat(self, messages: list[dict]) -> Reply:
        """Return the model's reply to `messages`, or raise LLMError."""
        body = json.dumps({"model": self.model, "messages": messages}).encode()
        headers = {"Content-Type": "application/json"}
        if self.tags:
            headers["X-HGM-Tags"] = self.tags  # the gateway tags the call with them
        conn = http.client.HTTPConnection(self.host if self.port else "localhost", self.port, timeout=self.timeout)
        try:
            if not self.port:  # a unix socket: connect it here, http.client then uses it
                conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.sock.settimeout(self.timeout)
                conn.sock.connect(self.host)
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
