"""Memory items: what earlier expansions taught, stored in a run or in a bank shared by runs.

An item is one distilled lesson about one attempted change of an agent (see
`hgm.evolve.memory`): a title, a one-line description, the strategy, and the evidence hgm
measured (JSON), with a polarity (helped / hurt / unproven) and its provenance (run,
node, parent, expansion, diff hash, the model that wrote the words, whether the words
are the model's or a deterministic fallback). The same table lives in a run's hgm.db
(schema 3) and in a memory bank file (`MemoryBank`), with an FTS5 index for retrieval
ranked by BM25 (built into SQLite; no service needed).

This module holds plain SQL on a connection, shared by `archive.Run` and `MemoryBank`;
it stores what it is given (already redacted and judged by the caller).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from archive import schema
from archive.errors import ArchiveError

BANK_APPLICATION_ID = 0x48474D4D  # "HGMM"
BANK_VERSION = 1
MAX_QUERY_TERMS = 32
# BM25 weights of the indexed columns: title, description, strategy, lesson
BM25_WEIGHTS = (3.0, 2.0, 1.0, 2.0)
_TERM_RE = re.compile(r"[^\W_]+", re.UNICODE)
# words too common to say what an item is about
STOPWORDS = frozenset(
    "a an and are as at be but by can do does for from had has have if in into is it its no not of on or "
    "so than that the their then there these this those to too was were when which while will with".split()
)

ITEM_COLUMNS = (
    "uid, run, run_key, stage, polarity, title, description, strategy, lesson, evidence, node_id, parent_id, "
    "expansion_id, diff_sha256, model, written_by, retired, created, updated"
)


@dataclass(frozen=True, slots=True)
class MemoryItem:
    """One memory item as stored (ids are those of the run named by `run_key`)."""

    uid: str
    stage: str  # decided (the gate's verdict) | compared (the child against its parent)
    polarity: str  # helped | hurt | unproven
    title: str
    description: str = ""
    strategy: str = ""
    lesson: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    run: str = ""  # the run's name (its directory), for people
    run_key: str = ""  # the run's identity, unique across runs (archive.Run.key)
    node_id: int | None = None  # the child the change made (None: no child was admitted)
    parent_id: int | None = None
    expansion_id: int | None = None
    diff_sha256: str = ""
    model: str = ""  # the model that wrote the words (or was asked to, for a fallback)
    written_by: str = "model"  # model | fallback (deterministic words from the evidence)
    retired: bool = False  # the node it is about, or its parent, was retired
    created: float = field(default_factory=time.time)
    updated: float | None = None
    id: int | None = None  # row id in the database it was read from

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.stage, schema.MEMORY_STAGES, "stage"),
                                     (self.polarity, schema.MEMORY_POLARITIES, "polarity"),
                                     (self.written_by, schema.MEMORY_WRITERS, "written_by")):
            if value not in allowed:
                raise ValueError(f"unknown memory item {what} {value!r}; expected one of {', '.join(allowed)}")
        if not self.uid or not self.title.strip():
            raise ValueError("a memory item needs a uid and a title")

    def row(self) -> tuple:
        return (
            self.uid, self.run, self.run_key, self.stage, self.polarity, self.title, self.description,
            self.strategy, self.lesson, json.dumps(dict(self.evidence), default=str, sort_keys=True),
            self.node_id, self.parent_id, self.expansion_id, self.diff_sha256, self.model, self.written_by,
            int(self.retired), self.created, self.updated if self.updated is not None else self.created,
        )

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-able values."""
        return {f.name: (dict(self.evidence) if f.name == "evidence" else getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "MemoryItem":
        data = {k: row[k] for k in ("id", *[c.strip() for c in ITEM_COLUMNS.split(",")]) if k in row}
        data["evidence"] = json.loads(data.get("evidence") or "{}")
        data["retired"] = bool(data.get("retired"))
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ExpansionMemory:
    """What an expansion adds to a run's memory, stored with the expansion in one transaction:
    the items it produced (their node and expansion ids filled in by the archive) and the
    items its diagnosis was shown, best first (copied into the run when they came from a bank)."""

    produced: tuple[MemoryItem, ...] = ()
    used: tuple[MemoryItem, ...] = ()


def fts_query(text: str) -> str:
    """An FTS5 query matching any word of `text` (each quoted, so no FTS syntax gets through)."""
    seen: list[str] = []
    for word in _TERM_RE.findall(text.lower()):
        if len(word) >= 2 and word not in STOPWORDS and word not in seen:
            seen.append(word)
        if len(seen) >= MAX_QUERY_TERMS:
            break
    return " OR ".join(f'"{w}"' for w in seen)


# ----------------------------------------------------------------------------- SQL on a connection


def _rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, tuple(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def insert_items(conn: sqlite3.Connection, items: Iterable[MemoryItem], *, expansion_id: int | None = None,
                 node_id: int | None = None) -> int:
    """Insert items not yet present (by uid), inside the caller's transaction; returns how many.

    `expansion_id` (and `node_id`, for items without one) are filled in: an expansion's
    items are distilled before the archive gives the expansion and its child their ids.
    """
    count = 0
    for item in items:
        if expansion_id is not None:
            item = replace(item, expansion_id=expansion_id)
        if node_id is not None and item.node_id is None:
            item = replace(item, node_id=node_id)
        cur = conn.execute(
            f"INSERT OR IGNORE INTO memory ({ITEM_COLUMNS}) VALUES ({', '.join('?' * len(item.row()))})", item.row()
        )
        count += cur.rowcount
    return count


def upsert_items(conn: sqlite3.Connection, items: Iterable[MemoryItem]) -> int:
    """Insert items, or bring a present one's evidence, polarity and retirement up to date
    when the given copy is newer (a bank kept in step with its runs); returns rows changed."""
    count = 0
    for item in items:
        cur = conn.execute(
            f"INSERT INTO memory ({ITEM_COLUMNS}) VALUES ({', '.join('?' * len(item.row()))})"
            " ON CONFLICT(uid) DO UPDATE SET evidence = excluded.evidence, polarity = excluded.polarity,"
            " retired = MAX(memory.retired, excluded.retired), updated = excluded.updated"
            " WHERE excluded.updated > memory.updated OR excluded.retired > memory.retired",
            item.row(),
        )
        count += cur.rowcount
    return count


def update_evidence(conn: sqlite3.Connection, uid: str, evidence: Mapping[str, Any], polarity: str,
                    now: float | None = None) -> bool:
    """Replace an item's evidence and polarity (new measurements); False when absent."""
    if polarity not in schema.MEMORY_POLARITIES:
        raise ValueError(f"unknown polarity {polarity!r}")
    cur = conn.execute(
        "UPDATE memory SET evidence = ?, polarity = ?, updated = ? WHERE uid = ?",
        (json.dumps(dict(evidence), default=str, sort_keys=True), polarity, now or time.time(), uid),
    )
    return cur.rowcount > 0


def select_items(
    conn: sqlite3.Connection,
    *,
    run_key: str | None = None,
    uids: Sequence[str] | None = None,
    polarity: str | None = None,
    stage: str | None = None,
    text: str | None = None,
    node_id: int | None = None,
    touching: int | None = None,
    parents: Sequence[int] | None = None,
    expansion_id: int | None = None,
    include_retired: bool = True,
    newest_first: bool = False,
    limit: int | None = None,
) -> list[MemoryItem]:
    """Items filtered by any of: run, uids, polarity, stage, a substring of their words,
    node (`node_id`), node or parent (`touching`), parent among `parents`, expansion."""
    where: list[str] = []
    params: list[Any] = []
    for sql, value in (("run_key = ?", run_key), ("polarity = ?", polarity), ("stage = ?", stage),
                       ("node_id = ?", node_id), ("expansion_id = ?", expansion_id)):
        if value is not None:
            where.append(sql)
            params.append(value)
    if touching is not None:
        where.append("(node_id = ? OR parent_id = ?)")
        params += [touching, touching]
    for column, values in (("uid", uids), ("parent_id", parents)):
        if values is not None:
            values = list(values)
            if not values:
                return []
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            params += values
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in ("title", "description", "strategy", "lesson"))
                     + ")")
        params += [pattern] * 4
    if not include_retired:
        where.append("retired = 0")
    sql = "SELECT * FROM memory" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY id DESC" if newest_first else " ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [MemoryItem.from_row(r) for r in _rows(conn, sql, params)]


def search(conn: sqlite3.Connection, text: str, limit: int, *, include_retired: bool = False) -> list[MemoryItem]:
    """The items whose words best match `text`, best first (FTS5, BM25)."""
    query = fts_query(text)
    if not query or limit <= 0:
        return []
    weights = ", ".join(str(w) for w in BM25_WEIGHTS)
    sql = (
        "SELECT memory.* FROM memory_fts JOIN memory ON memory.id = memory_fts.rowid"
        " WHERE memory_fts MATCH ?" + ("" if include_retired else " AND memory.retired = 0")
        + f" ORDER BY bm25(memory_fts, {weights}), memory.id DESC LIMIT ?"
    )
    return [MemoryItem.from_row(r) for r in _rows(conn, sql, (query, limit))]


def insert_uses(conn: sqlite3.Connection, expansion_id: int, used: Sequence[MemoryItem]) -> None:
    """Record which items an expansion was shown, best first (inside the caller's transaction)."""
    conn.executemany(
        "INSERT OR IGNORE INTO memory_uses (expansion_id, uid, rank) VALUES (?, ?, ?)",
        [(expansion_id, item.uid, rank) for rank, item in enumerate(used)],
    )


def used_items(conn: sqlite3.Connection, expansion_id: int) -> list[MemoryItem]:
    """The items an expansion was shown, best first."""
    rows = _rows(conn, "SELECT memory.* FROM memory_uses JOIN memory ON memory.uid = memory_uses.uid"
                       " WHERE memory_uses.expansion_id = ? ORDER BY memory_uses.rank", (expansion_id,))
    return [MemoryItem.from_row(r) for r in rows]


def store_expansion_memory(conn: sqlite3.Connection, memory: ExpansionMemory | None, expansion_id: int,
                           node_id: int | None) -> None:
    """An expansion's produced and used items (inside the transaction that stores the expansion)."""
    if memory is None:
        return
    insert_items(conn, memory.produced, expansion_id=expansion_id, node_id=node_id)
    insert_items(conn, memory.used)  # items from a bank are copied in, unchanged
    insert_uses(conn, expansion_id, memory.used)


# ----------------------------------------------------------------------------- the bank


class MemoryBank:
    """A memory bank file shared between runs: SQLite (WAL) with the runs' `memory` table.

    `MemoryBank.open(path, create=True)` makes the file if it is missing. Several runs may
    append at once (SQLite's locking, 10 s busy timeout). Thread-safe.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = Path(path)
        self._conn = conn
        self._lock = threading.Lock()

    @staticmethod
    def check(path: Path) -> None:
        """Raise ArchiveError (one line) when `path` exists and is not a memory bank."""
        path = Path(path)
        if not path.exists():
            return
        if not path.is_file():
            raise ArchiveError(f"memory bank {path} is not a file; pass a bank file (created if missing)")
        try:
            with path.open("rb") as fh:
                header = fh.read(16)
        except OSError as exc:
            raise ArchiveError(f"cannot read memory bank {path}: {exc.strerror}") from None
        if header and header != b"SQLite format 3\x00":
            raise ArchiveError(f"{path} is not a memory bank (not SQLite); pass another file or a new path")
        if not header:
            return
        # immutable when no WAL is there: checking writes nothing, not even SQLite's side files
        wal = path.with_name(path.name + "-wal").exists()
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro{'' if wal else '&immutable=1'}", uri=True)
        try:
            app_id, version = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("application_id", "user_version"))
        except sqlite3.DatabaseError as exc:
            raise ArchiveError(f"memory bank {path} is unreadable ({exc}); pass another file") from None
        finally:
            conn.close()
        if app_id != BANK_APPLICATION_ID:
            what = "an hgm run database" if app_id == schema.APPLICATION_ID else "an SQLite file but not a memory bank"
            raise ArchiveError(f"{path} is {what}; pass a memory bank file (hgm memory reads runs too)")
        if version > BANK_VERSION:
            raise ArchiveError(f"memory bank {path} has version {version}, newer than this hgm understands; upgrade hgm")

    @classmethod
    def open(cls, path: Path, *, create: bool = False, writable: bool = True) -> "MemoryBank":
        """Open (or, with `create`, make) a bank; ArchiveError with one line when it cannot be used."""
        path = Path(path)
        cls.check(path)
        if not path.exists() or path.stat().st_size == 0:
            if not (create and writable):
                raise ArchiveError(f"memory bank {path} does not exist; `hgm run --memory {path}` creates it")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
                conn.executescript("BEGIN;\n" + schema.MEMORY_DDL + f"\nPRAGMA application_id = {BANK_APPLICATION_ID};"
                                   f"\nPRAGMA user_version = {BANK_VERSION};\nCOMMIT;")
                conn.close()
            except (OSError, sqlite3.Error) as exc:
                raise ArchiveError(f"cannot create memory bank {path}: {exc}") from None
        uri = str(path) if writable else f"{path.resolve().as_uri()}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=not writable, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
            if writable:
                conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as exc:
            raise ArchiveError(f"cannot open memory bank {path}: {exc}") from None
        return cls(path, conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "MemoryBank":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, fn: Any, *args: Any) -> int:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self._conn, *args)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return result

    def upsert(self, items: Iterable[MemoryItem]) -> int:
        """Add items, or bring the bank's copies up to date (one transaction); returns rows changed."""
        items = list(items)
        return self._write(upsert_items, items) if items else 0

    def items(self, **filters: Any) -> list[MemoryItem]:
        """Items filtered like `select_items`."""
        with self._lock:
            return select_items(self._conn, **filters)

    def search(self, text: str, limit: int) -> list[MemoryItem]:
        """Best matches for `text` (retired items left out)."""
        with self._lock:
            return search(self._conn, text, limit)


__all__ = ["BANK_APPLICATION_ID", "ExpansionMemory", "MemoryBank", "MemoryItem", "fts_query", "search",
           "select_items"]
