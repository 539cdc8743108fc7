"""Identity sockets: one unix socket per sandbox, its calls tagged by the socket, not the caller.

`Identities` keeps every identity's listening socket in one selector served by ONE thread,
so a gateway with hundreds of identities (an `hgm eval` of a large suite) costs a file
descriptor each, not a thread. Each accepted connection is served in a thread of its own
by `serve(connection, identity)`, as the main socket's connections are.
"""

from __future__ import annotations

import logging
import os
import selectors
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)

PREFIX = "id-"
SOCKET_NAME = "llm.sock"
MAX_UNIX_PATH = 107  # sun_path holds 108 bytes including the terminating NUL


@dataclass
class Identity:
    """One sandbox's own socket: the tags bound to it and where it lives."""

    tags: dict[str, str]
    directory: str
    listener: socket.socket = field(repr=False)

    @property
    def path(self) -> str:
        return os.path.join(self.directory, SOCKET_NAME)


class Identities:
    """Opens, serves and closes identity sockets under `root` (thread-safe)."""

    def __init__(self, root: str, serve: Callable[[socket.socket, Identity], None]) -> None:
        self._root = root
        self._serve = serve
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None

    def open(self, tags: dict[str, str]) -> Identity:
        """A new listening socket in a fresh directory, bound to `tags`."""
        directory = tempfile.mkdtemp(prefix=PREFIX, dir=self._root)
        path = os.path.join(directory, SOCKET_NAME)
        if len(os.fsencode(path)) > MAX_UNIX_PATH:
            shutil.rmtree(directory, ignore_errors=True)
            raise ValueError(f"socket path {path} is longer than {MAX_UNIX_PATH} bytes; choose a shorter --socket")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(64)
            listener.setblocking(False)
            os.chmod(path, 0o777)  # sandboxed agents run as another uid (1000)
            os.chmod(directory, 0o755)
        except BaseException:
            listener.close()
            shutil.rmtree(directory, ignore_errors=True)
            raise
        identity = Identity(tags, directory, listener)
        with self._lock:
            if self._closed:
                listener.close()
                shutil.rmtree(directory, ignore_errors=True)
                raise RuntimeError("the gateway is closed")
            self._selector.register(listener, selectors.EVENT_READ, identity)
            if self._thread is None:
                self._thread = threading.Thread(target=self._accept_loop, name="hgm-gateway-identities", daemon=True)
                self._thread.start()
        return identity

    def close(self, identity: Identity) -> None:
        """Stop listening on `identity` and remove its directory (calls in progress finish)."""
        with self._lock:
            try:
                self._selector.unregister(identity.listener)
            except (KeyError, ValueError):
                pass
        identity.listener.close()
        shutil.rmtree(identity.directory, ignore_errors=True)

    def close_all(self) -> None:
        with self._lock:
            self._closed = True
            identities = [key.data for key in self._selector.get_map().values()]
        for identity in identities:
            self.close(identity)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._selector.close()

    def _accept_loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
            try:
                events = self._selector.select(timeout=0.2)
            except (OSError, ValueError):  # closed under us
                continue
            for key, _ in events:
                identity: Identity = key.data
                try:
                    connection, _ = identity.listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:  # closed between select and accept
                    continue
                connection.setblocking(True)
                threading.Thread(target=self._serve_one, args=(connection, identity), name="hgm-gateway-call",
                                 daemon=True).start()

    def _serve_one(self, connection: socket.socket, identity: Identity) -> None:
        try:
            self._serve(connection, identity)
        except Exception:  # noqa: BLE001 - a broken connection must not reach the terminal
            log.debug("identity connection failed", exc_info=True)
        finally:
            try:
                connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            connection.close()
