"""The HTTP side: an OpenAI-compatible server on a unix socket (and optionally loopback TCP).

Endpoints: `POST /v1/chat/completions`, `GET /v1/models`, `GET /health`. Every response is
JSON with a Content-Length (HTTP/1.1 keep-alive works); every error is OpenAI-shaped.

Besides its main socket, the gateway gives every `access(tags)` a socket of its own (an
*identity*: a fresh directory holding `llm.sock`, mounted into that one sandbox). Calls on
it are tagged with those tags, whatever the caller sends; `release(job=...)` closes the
identities of a finished job and `close()` all of them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import socketserver
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Mapping

from hgm.gateway.access import ModelAccess, model_access
from hgm.gateway.backends import make_backend
from hgm.gateway.budget import BudgetLedger
from hgm.gateway.config import GatewayConfig
from hgm.gateway.identities import Identities, Identity
from hgm.gateway.protocol import TAGS_HEADER, error_body
from hgm.gateway.records import CallRecord, Recorder
from hgm.gateway.service import ChatService
from hgm.gateway.types import Backend, BackendError

CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
MODELS_PATHS = frozenset({"/v1/models", "/models"})
HEALTH_PATHS = frozenset({"/health", "/healthz", "/v1/health"})
MAX_UNIX_PATH = 107  # sun_path holds 108 bytes including the terminating NUL
SOCKET_NAME = "llm.sock"

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hgm-gateway"
    timeout = 300  # seconds an idle keep-alive connection may hold its thread

    @property
    def gateway(self) -> "Gateway":
        return self.server.gateway  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        if self._route() not in CHAT_PATHS:
            self._send(404, error_body(f"no endpoint POST {self.path}; use /v1/chat/completions", "not_found"))
            return
        body = self._read_body()
        if body is None:
            return
        identity = getattr(self.server, "identity", None)
        try:
            status, payload = self.gateway.service.handle(body, self.headers.get(TAGS_HEADER), identity)
        except Exception as exc:  # noqa: BLE001 - answer, never print a traceback over the display
            log.debug("gateway request failed", exc_info=True)
            status, payload = 500, error_body(f"gateway error: {exc.__class__.__name__}: {exc}", "internal_error")
        self._send(status, payload)

    def do_GET(self) -> None:
        route = self._route()
        if route in MODELS_PATHS:
            self._send(200, self.gateway.models_body())
        elif route in HEALTH_PATHS:
            self._send(200, self.gateway.health_body())
        else:
            self._send(404, error_body(f"no endpoint GET {self.path}", "not_found"))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.close_connection = True
        self._send(code, error_body(message or HTTPStatus(code).phrase, "invalid_request_error"))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # every chat call is recorded through the recorder instead

    def address_string(self) -> str:
        return self.client_address[0] if isinstance(self.client_address, tuple) else "unix"

    def _route(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    def _read_body(self) -> bytes | None:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.close_connection = True
            self._send(411, error_body("a Content-Length header is required", "invalid_request_error"))
            return None
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._send(400, error_body("Content-Length is not a valid length", "invalid_request_error"))
            return None
        limit = self.gateway.config.max_body_bytes
        if length > limit:
            self.close_connection = True
            self._send(413, error_body(f"request body is larger than {limit} bytes", "invalid_request_error"))
            return None
        return self.rfile.read(length)

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8", "replace")  # never a lone surrogate
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        head = (
            f"HTTP/1.1 {status} {phrase}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Connection: {'close' if self.close_connection else 'keep-alive'}\r\n\r\n"
        ).encode("ascii")
        try:
            self.wfile.write(head + body)  # one write: no Nagle/delayed-ACK stall
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _QuietErrors:
    """A connection that breaks (client gone, bad bytes) is logged, never printed to the terminal."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("gateway connection failed", exc_info=True)


class _UnixServer(_QuietErrors, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128  # many agents may connect at once; the default 5 refuses them (EAGAIN)
    block_on_close = False
    identity: Mapping[str, str] | None = None  # tags of every call on this socket (None: the header's)


class _TcpServer(_QuietErrors, socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    request_queue_size = 128
    block_on_close = False
    allow_reuse_address = True


class _BoundServer:
    """What a handler on an identity socket sees as its server: the gateway and the tags."""

    def __init__(self, gateway: "Gateway", identity: Identity) -> None:
        self.gateway = gateway
        self.identity = identity.tags


class Gateway:
    """A running gateway. Use `start_gateway` to make one; `close()` (or `with`) stops it."""

    def __init__(
        self, config: GatewayConfig, recorder: Recorder, backend: Backend | None = None
    ) -> None:
        self.config = config
        self.ledger = BudgetLedger(config.run_budget, config.tag_budgets)
        self._backends: dict[str, Backend] = {}
        self._backends_lock = threading.Lock()
        if backend is not None:
            self._backends[config.model] = backend
        else:
            self._backends[config.model] = make_backend(config.model, config)
        self.service = ChatService(config, recorder, self.backend_for, self.ledger)
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []
        self._own_dir: str | None = None
        self._identities: dict[tuple[tuple[str, str], ...], Identity] = {}
        self._identity_lock = threading.Lock()
        self._listeners: Identities | None = None
        self._closed = False
        self.socket_path = ""
        self.tcp_url: str | None = None
        try:
            self.socket_path = self._listen_unix(config.socket_path)
            if config.tcp_port is not None:
                self.tcp_url = self._listen_tcp(config.tcp_port)
        except BaseException:
            self.close()  # stop whatever listener did start
            raise

    @property
    def url(self) -> str:
        """What `HGM_LLM_URL` should be on this host: the socket path."""
        return self.socket_path

    def access(self, tags: Mapping[str, object]) -> ModelAccess:
        """What an agent needs to reach this gateway with calls tagged `tags` (see `ModelAccess`).

        The access names a socket of its own, bound to `tags`: calls on it are accounted to
        those tags whatever the agent claims. Equal tags share one socket until `release`.
        """
        clean = {str(k): str(v) for k, v in tags.items() if v is not None}
        key = tuple(sorted(clean.items()))
        with self._identity_lock:
            if self._closed:
                raise RuntimeError("the gateway is closed")
            identity = self._identities.get(key)
            if identity is None:
                if self._listeners is None:
                    self._listeners = Identities(self._own_dir or os.path.dirname(self.socket_path), self._serve_identity)
                identity = self._identities[key] = self._listeners.open(clean)
        return model_access(identity.path, self.config.alias, clean)

    def release(self, **match: object) -> int:
        """Close the identities whose tags include every `match` item (e.g. `job=KEY`); return how many."""
        wanted = {str(k): str(v) for k, v in match.items()}
        with self._identity_lock:
            keys = [k for k, ident in self._identities.items() if wanted.items() <= ident.tags.items()]
            gone = [self._identities.pop(k) for k in keys]
        for identity in gone:
            self._listeners.close(identity)  # type: ignore[union-attr] - set when the first was opened
        return len(gone)

    def identities(self) -> list[dict[str, str]]:
        """The tags of every identity socket still open."""
        with self._identity_lock:
            return [dict(i.tags) for i in self._identities.values()]

    def _serve_identity(self, connection: socket.socket, identity: Identity) -> None:
        _Handler(connection, "unix", _BoundServer(self, identity))

    def backend_for(self, spec: str) -> Backend:
        """The backend serving `spec`, built on first use."""
        with self._backends_lock:
            if spec not in self._backends:
                try:
                    self._backends[spec] = make_backend(spec, self.config)
                except ValueError as exc:
                    raise BackendError(str(exc), status=500, kind="model_unavailable") from None
            return self._backends[spec]

    def models_body(self) -> dict[str, Any]:
        names = [self.config.alias, *self.config.aliases]
        return {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "hgm"} for n in names]}

    def health_body(self) -> dict[str, Any]:
        return {"status": "ok", "model": self.config.alias, "spent": self.ledger.totals()}

    def close(self) -> None:
        """Stop listening, remove the socket (and its directory if the gateway made it)."""
        with self._identity_lock:
            if self._closed:
                return
            self._closed = True
            self._identities.clear()
            listeners = self._listeners
        if listeners is not None:
            listeners.close_all()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.socket_path:
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass
        if self._own_dir:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def __enter__(self) -> "Gateway":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self, server: socketserver.BaseServer, name: str) -> None:
        server.gateway = self  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True)
        thread.start()
        self._servers.append(server)
        self._threads.append(thread)

    def _listen_unix(self, wanted: str | None) -> str:
        if wanted is None:
            self._own_dir = tempfile.mkdtemp(prefix="hgm-gw-", dir="/tmp" if os.path.isdir("/tmp") else None)
            path = os.path.join(self._own_dir, SOCKET_NAME)
        else:
            path = os.path.abspath(wanted)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _remove_stale_socket(path)
        if len(os.fsencode(path)) > MAX_UNIX_PATH:
            raise ValueError(f"socket path {path} is longer than {MAX_UNIX_PATH} bytes; choose a shorter one")
        server = _UnixServer(path, _Handler)
        # Sandboxed agents run as another uid (1000): the socket must be connectable by all,
        # but the folder is not listable, so nobody finds the identity sockets inside it.
        os.chmod(path, 0o777)
        if self._own_dir:
            os.chmod(self._own_dir, 0o711)
        self._serve(server, "hgm-gateway-unix")
        return path

    def _listen_tcp(self, port: int) -> str:
        server = _TcpServer(("127.0.0.1", port), _Handler)
        self._serve(server, "hgm-gateway-tcp")
        return f"http://127.0.0.1:{server.server_address[1]}"


def _remove_stale_socket(path: str) -> None:
    if not os.path.exists(path):
        return
    if not Path(path).is_socket():
        raise ValueError(f"{path} exists and is not a socket; choose another --socket path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: left over from a crashed run
        return
    finally:
        probe.close()
    raise ValueError(f"another gateway already listens on {path}")


def _discard(record: CallRecord) -> None:
    return None


def start_gateway(
    config: GatewayConfig, recorder: Recorder | None = None, backend: Backend | None = None
) -> Gateway:
    """Start a gateway in background threads; it serves until `close()`.

    `recorder` receives a `CallRecord` for every chat call (calls are serialized). `backend`
    replaces the one `config.model` names (tests inject fakes this way). Raises ValueError
    for a bad model spec or socket path.
    """
    return Gateway(config, recorder or _discard, backend)
