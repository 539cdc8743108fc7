"""Loss detection: what the run has written, remembered outside hgm.db.

After a crash, committed transactions may live only in SQLite's write-ahead log
(`hgm.db-wal`). If that file is deleted or cut short, SQLite silently opens the older
state. Two witnesses outside the database catch this:

* `hgm.marks`: the highest row id the writer has committed in every table, rewritten
  (in place, one small write) after each transaction. A database whose row ids are below
  these marks has lost committed data.
* `agents.git`: a branch `node/N` is made before node N's row is committed, so a crash
  inside `add_node` leaves exactly one branch without a row, numbered one above the last
  node. Any other branch without a row means node rows were lost.

Readers read the marks *before* the database, and the writer updates them *after* each
commit, so a reader never mistakes a live writer's progress for a loss.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

MARKS_NAME = "hgm.marks"
TABLES = ("nodes", "evaluations", "expansions", "llm_calls", "events")
_BRANCH_DIR = ("refs", "heads", "node")
_PACKED_PREFIX = "refs/heads/node/"


def read_marks(run_dir: Path) -> dict[str, int] | None:
    """The marks file as {table: highest id}, or None when absent or unreadable."""
    try:
        text = (Path(run_dir) / MARKS_NAME).read_text("ascii")
    except (OSError, UnicodeDecodeError):
        return None
    marks: dict[str, int] = {}
    for item in text.split():
        name, _, value = item.partition("=")
        if name in TABLES and value.lstrip("-").isdigit():
            marks[name] = int(value)
    return marks or None


def db_marks(conn: sqlite3.Connection, tables: tuple[str, ...] = TABLES) -> dict[str, int]:
    """The highest row id of each table (-1 when empty)."""
    return {t: conn.execute(f"SELECT COALESCE(MAX(id), -1) FROM {t}").fetchone()[0] for t in tables}


def branch_ids(git_dir: Path) -> dict[int, str]:
    """{node id: commit} of every node/<id> branch, read from the ref files (no git process)."""
    found: dict[int, str] = {}
    packed = Path(git_dir) / "packed-refs"
    try:
        for line in packed.read_text("utf-8", "replace").splitlines():
            sha, _, ref = line.partition(" ")
            tail = ref.strip()[len(_PACKED_PREFIX):] if ref.strip().startswith(_PACKED_PREFIX) else ""
            if tail.isdigit():
                found[int(tail)] = sha
    except OSError:
        pass
    loose = Path(git_dir).joinpath(*_BRANCH_DIR)
    if loose.is_dir():
        for entry in loose.iterdir():
            if entry.name.isdigit() and entry.is_file():
                try:
                    found[int(entry.name)] = entry.read_text("ascii", "replace").strip()
                except OSError:
                    continue
    return found


def find_loss(marks: dict[str, int] | None, found: dict[str, int], node_ids: set[int],
              branches: dict[int, str]) -> tuple[list[str], list[int]]:
    """(what is missing, in words; branches that lost their node row) — both empty when nothing is."""
    missing = []
    for table in TABLES:
        wrote = (marks or {}).get(table)
        if wrote is not None and wrote > found.get(table, -1):
            missing.append(f"{table} up to #{wrote} were written, the last one found is #{found.get(table, -1)}")
    orphans = sorted(set(branches) - node_ids)
    next_id = max(node_ids, default=-1) + 1
    crashed_in_add_node = orphans == [next_id]  # git first, then the row: one branch may lead
    if orphans and not crashed_in_add_node:
        missing.append(f"agents.git holds node(s) {_ids(orphans)} that hgm.db lacks")
        return missing, orphans
    return missing, []


def _ids(ids: list[int]) -> str:
    return ", ".join(str(i) for i in ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")


class MarksFile:
    """The writer's marks: kept in memory, written in place after each commit."""

    def __init__(self, run_dir: Path, start: dict[str, int]) -> None:
        self._path = Path(run_dir) / MARKS_NAME
        self.marks = {t: int(start.get(t, -1)) for t in TABLES}
        self._fd: int | None = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._length = 0
        self._write(truncate=True)

    def update(self, found: dict[str, int]) -> None:
        """Raise the marks to `found` (ids just committed) and write them if they moved."""
        moved = False
        for table, value in found.items():
            if value > self.marks.get(table, -1):
                self.marks[table] = value
                moved = True
        if moved:
            self._write()

    def _write(self, truncate: bool = False) -> None:
        if self._fd is None:
            return
        data = (" ".join(f"{t}={self.marks[t]}" for t in TABLES) + "\n").encode("ascii")
        try:
            os.pwrite(self._fd, data, 0)
            if truncate or len(data) < self._length:
                os.ftruncate(self._fd, len(data))
            self._length = len(data)
        except OSError:
            # a full disk: the marks only grow, so an older file under-reports and never
            # raises a false alarm; the database write itself already succeeded
            pass

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
