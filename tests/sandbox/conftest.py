"""Fixtures for sandbox tests: one Docker backend (base image built once if missing), local backends."""

from __future__ import annotations

import http.server
import os
import socket
import socketserver
import threading
from pathlib import Path

import pytest

from sandbox.api import BASE_IMAGE


@pytest.fixture(scope="session")
def docker_backend():
    """A DockerBackend whose base image exists (built once per test session when missing)."""
    from sandbox.base_image import build_base_image
    from sandbox.docker_backend import DockerBackend

    build_base_image(BASE_IMAGE)  # returns at once when the image exists
    backend = DockerBackend()
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def local_backend():
    from sandbox.local_backend import LocalBackend

    return LocalBackend()


@pytest.fixture(params=[pytest.param("docker", marks=pytest.mark.docker), "local"])
def backend(request):
    """Each backend in turn; docker tests are gated by the `docker` marker."""
    return request.getfixturevalue(f"{request.param}_backend")


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        body = b"hello from the gateway"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass

    def address_string(self) -> str:  # unix sockets have no client address
        return "unix"


@pytest.fixture
def gateway_dir(tmp_path: Path):
    """A host directory holding `gateway.sock`, served by a tiny stdlib HTTP server."""
    directory = tmp_path / "gateway"
    directory.mkdir()
    path = directory / "gateway.sock"
    server = _UnixHTTPServer(str(path), _Hello)
    os.chmod(directory, 0o755)
    os.chmod(path, 0o777)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield directory
    server.shutdown()
    server.server_close()


@pytest.fixture
def tcp_listener():
    """A TCP server on all host addresses; yields its port; counts accepted connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", 0))
    sock.listen(16)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            accepted.append(conn)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1], accepted
    stop.set()
    thread.join(2)
    sock.close()
