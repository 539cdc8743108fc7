"""Disk space: telling a full disk apart from other failures, and a small reserve for the last words.

A full disk shows up as `OSError(ENOSPC)`, as SQLite's SQLITE_FULL ("database or disk is
full") or as git's "No space left on device". `is_disk_full` recognises all of them (also
when wrapped), and `disk_full_error` turns one into a `DiskFull` whose message names the
path, the free space, and what is needed.

A writer keeps `hgm.reserve` (RESERVE_BYTES of zeros) in the run directory. When the disk
fills up, `free_reserve` deletes it so that the run can still record how it ended (its
status and a `session_end` event) instead of staying `running`; the next writable open
puts it back.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

from archive.errors import DiskFull

RESERVE_NAME = "hgm.reserve"
RESERVE_BYTES = 512 * 1024
NEEDED_BYTES = 50_000_000  # what a run needs free to go on (patches, logs, database growth)
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_FULL_TEXTS = ("no space left on device", "database or disk is full", "disk quota exceeded")


def is_disk_full(exc: BaseException | None) -> bool:
    """True if `exc` (or an exception it was raised from) means the disk is full."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, DiskFull):
            return True
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL":
            return True
        if any(text in str(exc).lower() for text in _FULL_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def mentions_full_disk(text: str) -> bool:
    """True if an error text (e.g. a recorded detail) says the disk was full."""
    lowered = text.lower()
    return any(t in lowered for t in _FULL_TEXTS) or "errno 28]" in lowered


def free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding `path` (its nearest existing ancestor)."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def human(n: int | None) -> str:
    """1536 -> '1.5 KB' (decimal units, as `df -H` prints)."""
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def disk_full_error(path: Path, needed: int = NEEDED_BYTES, resume: Path | None = None) -> DiskFull:
    """A one-line DiskFull naming `path`, its free space and what is needed."""
    then = f", then `hgm resume {resume}`" if resume is not None else ", then try again"
    return DiskFull(
        f"the disk holding {path} is full ({human(free_bytes(path))} free); "
        f"free at least {human(needed)} there{then}"
    )


def make_reserve(run_dir: Path) -> bool:
    """Put the reserve file in place (best effort: False when the disk has no room for it)."""
    path = Path(run_dir) / RESERVE_NAME
    try:
        if path.is_file() and path.stat().st_size >= RESERVE_BYTES:
            return True
        with open(path, "wb") as handle:
            handle.write(b"\0" * RESERVE_BYTES)  # real blocks, unlike a sparse truncate()
            handle.flush()
            os.fsync(handle.fileno())
        return True
    except OSError:
        path.unlink(missing_ok=True)
        return False


def free_reserve(run_dir: Path) -> bool:
    """Delete the reserve file; True if there was one."""
    try:
        (Path(run_dir) / RESERVE_NAME).unlink()
        return True
    except FileNotFoundError:
        return False
