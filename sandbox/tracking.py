"""A backend wrapper whose open sessions can all be closed at once (abandoning work)."""

from __future__ import annotations

import threading
from typing import Any

from sandbox.api import Backend, SandboxError, SandboxSpec, Session


class _TrackedSession:
    def __init__(self, inner: Session, owner: "TrackingBackend") -> None:
        self._inner = inner
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._owner._forget(self)

    def __enter__(self) -> "_TrackedSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TrackingBackend:
    """Wraps a backend; `close_all()` removes every session still open and refuses new ones."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "backend")
        self._lock = threading.Lock()
        self._open: set[_TrackedSession] = set()
        self._cancelled = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def open(self, spec: SandboxSpec) -> _TrackedSession:
        if self._cancelled:
            raise SandboxError("the run is being abandoned; no new sandbox")
        session = _TrackedSession(self.inner.open(spec), self)
        with self._lock:
            self._open.add(session)
        return session

    def _forget(self, session: _TrackedSession) -> None:
        with self._lock:
            self._open.discard(session)

    def close_all(self) -> None:
        """Close every open session (best effort) and open no more."""
        self._cancelled = True
        with self._lock:
            sessions = list(self._open)
        for session in sessions:
            try:
                session.close()
            except Exception:  # noqa: BLE001 - best effort while abandoning
                pass
