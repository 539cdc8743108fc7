"""A scripted OpenAI-compatible chat server for the agent's tests (stdlib only).

Each POST to /v1/chat/completions takes the next item of the script:
- a str: answered as the assistant's content (200, with usage);
- a dict with "status": answered with that status and the dict's "error" as OpenAI error JSON;
- a dict with "raw": the bytes/str sent verbatim with status 200 (malformed responses).
When the script runs out it answers 500. Requests (headers and JSON body) are kept in
`requests`. Serves on a unix socket (`FakeLLM.unix()`) or on loopback TCP (`FakeLLM.tcp()`).
"""

from __future__ import annotations

import json
import os
import socketserver
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(content: str, prompt_tokens: int = 100, completion_tokens: int = 20) -> bytes:
    return json.dumps({
        "id": "fake", "object": "chat.completion", "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        fake: FakeLLM = self.server.fake  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with fake.lock:
            fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
            item = fake.script.pop(0) if fake.script else {"status": 500, "error": {"message": "script exhausted"}}
        status, payload = 200, b""
        if isinstance(item, str):
            payload = completion(item)
        elif "raw" in item:
            raw = item["raw"]
            payload = raw.encode() if isinstance(raw, str) else raw
        else:
            status, payload = item["status"], json.dumps({"error": item.get("error", {})}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = super().get_request()
        return request, ("unix", 0)  # BaseHTTPRequestHandler expects a (host, port) pair


class FakeLLM:
    """Context manager serving `script`; `url` is what HGM_LLM_URL should be."""

    def __init__(self, script: list, server, url: str, cleanup: str | None = None) -> None:
        self.script = list(script)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.server = server
        self.server.fake = self
        self.url = url
        self.cleanup = cleanup
        self.thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)

    @classmethod
    def tcp(cls, script: list) -> "FakeLLM":
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        return cls(script, server, f"http://127.0.0.1:{server.server_address[1]}")

    @classmethod
    def unix(cls, script: list) -> "FakeLLM":
        folder = tempfile.mkdtemp(prefix="fake-llm-")
        path = os.path.join(folder, "llm.sock")
        return cls(script, UnixHTTPServer(path, Handler), path, cleanup=folder)

    def __enter__(self) -> "FakeLLM":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.cleanup:
            for name in os.listdir(self.cleanup):
                os.unlink(os.path.join(self.cleanup, name))
            os.rmdir(self.cleanup)
