"""A small stdlib client for the gateway (hgm's own calls, the CLI, tests and benchmarks)."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

from hgm.gateway.protocol import TAGS_HEADER


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket."""

    def __init__(self, socket_path: str, timeout: float = 300.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._socket_path)
        self.sock = sock


def connect(url: str, timeout: float = 300.0) -> http.client.HTTPConnection:
    """A connection to `url`: a unix socket path or `http://host:port`."""
    if url.startswith(("http://", "https://")):
        parts = urlsplit(url)
        return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    return UnixHTTPConnection(url, timeout=timeout)


def request(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
    timeout: float = 300.0,
) -> tuple[int, Any]:
    """Send one request; return (status, parsed JSON body). Reuses `connection` if given."""
    conn = connection or connect(url, timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        raw = response.read()
    finally:
        if connection is None:
            conn.close()
    try:
        return response.status, json.loads(raw)
    except json.JSONDecodeError:
        return response.status, raw.decode("utf-8", "replace")


def chat(
    url: str,
    messages: Sequence[Mapping[str, str]],
    *,
    model: str = "hgm",
    tags: Mapping[str, object] | None = None,
    connection: http.client.HTTPConnection | None = None,
    timeout: float = 300.0,
    **params: Any,
) -> tuple[int, dict[str, Any]]:
    """POST a chat-completions request; return (status, JSON body)."""
    body = json.dumps({"model": model, "messages": list(messages), **params}).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if tags:
        headers[TAGS_HEADER] = json.dumps({k: str(v) for k, v in tags.items()})
    return request(url, "POST", "/v1/chat/completions", body, headers, connection, timeout)


def reply_text(body: dict[str, Any]) -> str:
    """The assistant text of a successful chat-completions body."""
    return body["choices"][0]["message"]["content"]
