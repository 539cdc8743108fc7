"""The run lock: at most one writer per run directory.

An exclusive `flock` on `hgm.lock` is held for as long as the writer lives; the kernel
drops it when the process dies, even by kill -9, so a stale lock is simply one we can
take. The holder's pid is written into the file so a refused writer can name it, and so
the next writer can tell that the previous one died without closing the run.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from archive.errors import ArchiveError, RunLocked

LOCK_NAME = "hgm.lock"


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def holder_pid(run_dir: Path) -> int | None:
    """The pid recorded in the lock file (a live writer, or a dead one that crashed)."""
    try:
        text = (run_dir / LOCK_NAME).read_text("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class RunLock:
    """An acquired lock on one run directory. Release it with `release()` (idempotent)."""

    def __init__(self, run_dir: Path) -> None:
        """Take the lock or raise RunLocked naming the live holder."""
        self.path = run_dir / LOCK_NAME
        self.stale_pid: int | None = None  # pid of a dead writer whose lock we took over
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ArchiveError(
                f"cannot create the run lock {self.path} ({exc.strerror}); open the run read-only or fix permissions"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            who = f"process {pid}" if pid else "another process"
            raise RunLocked(
                f"run {run_dir} is open for writing by {who}; stop it first, or open the run read-only"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        previous = _read_pid(fd)
        if previous is not None and previous != os.getpid():
            self.stale_pid = previous
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Clear the pid and drop the lock."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the descriptor releases the flock
