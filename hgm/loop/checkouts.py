"""Source trees of agent versions, checked out from the archive once per run session."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from archive.run import Run

COMPLETE = ".complete"


class CheckoutCache:
    """Node `i`'s agent files under `root/<i>`, checked out on first use (thread-safe)."""

    def __init__(self, run: Run, root: Path) -> None:
        self.run = run
        self.root = root
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, node_id: int) -> Path:
        with self._guard:
            lock = self._locks.setdefault(node_id, threading.Lock())
        dest = self.root / str(node_id)
        with lock:
            if not (dest / COMPLETE).exists():
                shutil.rmtree(dest, ignore_errors=True)
                self.run.checkout(node_id, dest)
                (dest / COMPLETE).write_text("")
        return dest
