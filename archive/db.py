"""SQLite connections to hgm.db: read-only inspection that never writes, and the writer.

The writer uses WAL with synchronous=NORMAL: a committed transaction survives the
process being killed (the WAL is in the OS page cache); only a power loss can drop the
last few commits, which `hgm resume` re-queues like any work in flight.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Iterator

from archive import schema
from archive.errors import CorruptDatabase, NewerSchema, NotARun

SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 10_000


def _uri(path: Path, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{path.resolve().as_uri()}?{query}"


def _check_header(db_path: Path) -> None:
    """Cheap checks on the file itself, before SQLite touches it."""
    try:
        with db_path.open("rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise CorruptDatabase(f"cannot read {db_path}: {exc.strerror}; check its permissions") from exc
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise CorruptDatabase(
            f"{db_path} is not an SQLite database (damaged or overwritten); restore it from a backup or start a new run"
        )


def connect_readonly(db_path: Path) -> sqlite3.Connection:
    """A read-only connection that writes nothing at all.

    When no WAL file exists the database is opened `immutable`, which creates no -wal or
    -shm files; otherwise a plain read-only connection reads the WAL that is there.
    """
    wal = db_path.with_name(db_path.name + "-wal")
    params = {"mode": "ro"} if wal.exists() else {"mode": "ro", "immutable": "1"}
    return sqlite3.connect(_uri(db_path, **params), uri=True)


def inspect(db_path: Path) -> int:
    """Validate hgm.db without writing anything; return its schema version."""
    _check_header(db_path)
    try:
        conn = connect_readonly(db_path)
    except sqlite3.Error as exc:
        raise CorruptDatabase(f"cannot open {db_path}: {exc}; restore it from a backup or start a new run") from exc
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise CorruptDatabase(
            f"{db_path} is corrupt ({exc}); restore it from a backup or start a new run"
        ) from exc
    finally:
        conn.close()
    if app_id != schema.APPLICATION_ID:
        raise NotARun(f"{db_path} is an SQLite file but not an hgm run database; point at a run directory")
    if version > schema.SCHEMA_VERSION:
        raise NewerSchema(
            f"{db_path} has schema version {version}, newer than this hgm understands "
            f"({schema.SCHEMA_VERSION}); upgrade hgm to open this run"
        )
    required = [*schema.REQUIRED_TABLES, *(t for t, since in schema.TABLES_SINCE.items() if version >= since)]
    missing = [t for t in required if t not in tables]
    if missing:
        raise CorruptDatabase(
            f"{db_path} lacks table(s) {', '.join(missing)}; restore it from a backup or start a new run"
        )
    return version


def connect(db_path: Path, *, writable: bool) -> sqlite3.Connection:
    """Open hgm.db (already inspected). Autocommit mode: use `transaction()` to write."""
    if writable:
        conn = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(_uri(db_path, mode="ro"), uri=True, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    if writable:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def create(db_path: Path) -> sqlite3.Connection:
    """Create a new hgm.db with the current schema and return a writable connection."""
    conn = connect(db_path, writable=True)
    schema.create_schema(conn)
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed on success, rolled back on any exception.

    SQLite rolls a transaction back by itself on some errors (a full disk, SQLITE_FULL);
    the original error is then raised, not "cannot rollback - no transaction is active".
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the original error says more
        raise
