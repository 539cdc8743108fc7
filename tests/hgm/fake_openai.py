"""A tiny OpenAI-compatible server on loopback for provider tests (stdlib only).

`FakeOpenAI(replies)` answers `POST /v1/chat/completions` with `replies[n]`, where n is the
number of assistant messages already in the conversation (the last reply repeats), so a
seed-agent attempt plays the list from its start. `mode` switches behaviour at run time:
"ok", or an HTTP status to answer every call with (401, 503, ...). `outage_after=N` turns
the server to 503 after N successful answers.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, replies: list[str], outage_after: int | None = None) -> None:
        self.replies = replies
        self.mode: str | int = "ok"
        self.outage_after = outage_after
        self.answered = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if self.outage_after is not None and self.answered >= self.outage_after and self.mode == "ok":
                self.mode = 503
            if self.mode != "ok":
                self.failed += 1
                status = int(self.mode)
                kind = "invalid_api_key" if status == 401 else "server_error"
                return status, {"error": {"message": f"fake provider says {status}", "type": kind, "code": kind}}
            self.answered += 1
        turns = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        text = self.replies[min(turns, len(self.replies) - 1)]
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        return 200, {"id": "fake", "object": "chat.completion", "created": 0, "model": body.get("model", "fake"),
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": "stop"}], "usage": usage}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, payload = fake.answer(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
