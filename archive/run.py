"""A run on disk: `Run.create` makes one, `Run.open` reads or resumes one.

Layout of a run directory:
    hgm.db      SQLite (WAL): run, nodes, evaluations, expansions, llm_calls, events
    hgm.db-wal  SQLite's write-ahead log: after a crash it HOLDS committed data
    agents.git  bare git repository, branch node/<id> per agent version
    hgm.lock    the writer's lock (pid inside while a writer holds it)
    hgm.marks   the highest row id committed per table (loss detection, `archive.marks`)
    hgm.reserve a little space kept back for recording how a run ended on a full disk

Opening validates everything before creating or changing any file, so a wrong path, a
corrupt or newer database, a missing git store or a database that lost committed data
fails with an ArchiveError and leaves the directory untouched. A full disk during a write
is a `DiskFull` error; the transaction is rolled back, so the database stays consistent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from archive import db, marks, schema, space
from archive import memory as memory_sql
from archive.errors import (
    ArchiveError,
    CorruptDatabase,
    DiskFull,
    DuplicateEvaluation,
    LostData,
    MissingGitStore,
    NotARun,
    ReadOnlyRun,
    RunExists,
    UnknownNode,
)
from archive.lock import RunLock, holder_pid, pid_alive
from archive.memory import ExpansionMemory, MemoryItem
from archive.records import (
    ATTEMPT_COLUMNS,
    EVAL_COLUMNS,
    EXPANSION_COLUMNS,
    LEDGER_COLUMNS,
    AdmissionRecord,
    EvalRecord,
    ExpansionRecord,
)
from archive.tree import Tree, build_tree

if TYPE_CHECKING:
    from archive.agents_git import AgentStore

DB_NAME = "hgm.db"
GIT_NAME = "agents.git"
EXPORT_FORMATS = ("dir", "patch", "bundle")


def _hgm_version() -> str:
    try:
        return metadata.version("hgm")
    except metadata.PackageNotFoundError:
        return "unknown"


def validate(run_dir: Path) -> int:
    """Check that `run_dir` is a usable run without writing anything; return its schema version."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise NotARun(f"{run_dir} does not exist; pass a run directory (see `hgm runs`)")
    if not run_dir.is_dir():
        raise NotARun(f"{run_dir} is a file, not a run directory; pass a run directory (see `hgm runs`)")
    db_path = run_dir / DB_NAME
    if not db_path.is_file():
        raise NotARun(f"{run_dir} is not an hgm run (no {DB_NAME}); pass a run directory (see `hgm runs`)")
    version = db.inspect(db_path)
    git_dir = run_dir / GIT_NAME
    if not ((git_dir / "HEAD").is_file() and (git_dir / "objects").is_dir() and (git_dir / "refs").is_dir()):
        raise MissingGitStore(
            f"{run_dir} has no usable {GIT_NAME} (agent versions); restore it from a backup, "
            "the database alone cannot rebuild the agents"
        )
    return version


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Summary of a run for listings."""

    path: str
    created: float
    updated: float
    status: str  # as recorded, except a `running` run whose writer is dead shows `crashed`
    hgm_version: str
    nodes: int
    evaluations: int


class Run:
    """An open run. Use as a context manager or call `close()`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock: RunLock | None, version: int = schema.SCHEMA_VERSION) -> None:
        self.path = Path(path)
        self.schema_version = version  # a reader of an older run sees its tables as they are
        self._conn = conn
        self._lock = lock
        self._mutex = threading.RLock()  # one connection, shared by threads: every use holds it
        self._agents: AgentStore | None = None
        self._marks: marks.MarksFile | None = None
        row = self._read_one("SELECT config, created FROM run WHERE id = 1")
        if row is None:
            raise CorruptDatabase(f"{self.path / DB_NAME} has no run row; restore it from a backup or start a new run")
        self.config: dict[str, Any] = self._stored_config(row[0])
        # the run's identity across copies and renames (memory items name their run by it)
        self.key = "run-" + hashlib.sha256(repr(float(row[1])).encode()).hexdigest()[:16]

    def _stored_config(self, text: Any) -> dict[str, Any]:
        """The frozen config, checked against the digest stored at creation (runs made since)."""
        where = self.path / DB_NAME
        fix = "restore hgm.db from a backup or start a new run"
        try:
            config = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise CorruptDatabase(f"{where} holds a damaged run config ({exc}); {fix}") from None
        if not isinstance(config, dict):
            raise CorruptDatabase(f"{where} holds a damaged run config (not a JSON object); {fix}")
        created = self._read_one("SELECT payload FROM events WHERE kind = 'created' ORDER BY id LIMIT 1")
        digest = None
        if created is not None:
            try:
                digest = json.loads(created[0]).get("config_sha256")
            except (TypeError, ValueError, AttributeError):
                raise CorruptDatabase(f"{where} holds a damaged creation record; {fix}") from None
        if digest is not None and digest != _digest(text):
            raise CorruptDatabase(f"{where} holds a run config that changed since the run was created "
                                  f"(its checksum differs); {fix}")
        return config

    # ----- opening and closing -------------------------------------------------------

    @classmethod
    def create(
        cls, run_dir: Path, config: dict[str, Any], seed_agent_dir: Path, *, hgm_version: str | None = None
    ) -> "Run":
        """Make a new run with `config` frozen and the seed agent as node 0; open it for writing.

        The run is built in a hidden sibling directory and renamed into place, so a crash
        during creation leaves no half-made run behind.
        """
        from archive.agents_git import AgentStore

        run_dir = Path(run_dir)
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise RunExists(f"{run_dir} already exists and is not empty; choose a new run directory")
        seed_agent_dir = Path(seed_agent_dir)
        if not seed_agent_dir.is_dir():
            raise ArchiveError(f"seed agent directory {seed_agent_dir} does not exist; pass the agent's source folder")
        try:
            config_json = json.dumps(config, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ArchiveError(f"run config cannot be stored as JSON ({exc}); pass plain values only") from exc

        tmp = run_dir.parent / f".{run_dir.name}.creating-{os.getpid()}"
        try:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            _remove_dead_creations(run_dir)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            store = AgentStore.init(tmp / GIT_NAME)
            commit = store.add_version(0, seed_agent_dir, None, "node 0: seed")
            store.close()
            conn = db.create(tmp / DB_NAME)
            now = time.time()
            with db.transaction(conn):
                conn.execute(
                    "INSERT INTO run (id, created, updated, status, config, hgm_version) VALUES (1, ?, ?, 'stopped', ?, ?)",
                    (now, now, config_json, hgm_version or _hgm_version()),
                )
                conn.execute(
                    "INSERT INTO nodes (id, parent_id, commit_sha, created, operator) VALUES (0, NULL, ?, ?, 'seed')",
                    (commit, now),
                )
                conn.execute("INSERT INTO events (time, kind, payload) VALUES (?, 'created', ?)",
                             (now, json.dumps({"config_sha256": _digest(config_json)})))
            conn.close()
            if run_dir.exists():
                run_dir.rmdir()
            os.rename(tmp, run_dir)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if space.is_disk_full(exc):
                raise space.disk_full_error(run_dir.parent) from exc
            raise
        try:
            return cls.open(run_dir, writable=True)
        except DiskFull:
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing was recorded in it yet
            raise

    @classmethod
    def open(cls, run_dir: Path, *, writable: bool = False, accept_loss: bool = False) -> "Run":
        """Open an existing run. Writers take the run lock (RunLocked if a live writer has it).

        A writer that finds the lock left by a dead process takes it over; if that run
        was `running`, it is marked `crashed` and a `lock_takeover` event is logged.

        A run whose database holds less than was written (see `archive.marks`) raises
        LostData; with `accept_loss` it opens anyway, and a writer then records a
        `data_loss` event, deletes the branches of lost nodes and starts from what is left.
        """
        run_dir = Path(run_dir)
        version = validate(run_dir)
        loss = _find_loss(run_dir)
        if loss[0] and not accept_loss:
            raise LostData(_loss_message(run_dir, loss[0]))
        if not writable:
            conn = _connect(run_dir, writable=False)
            try:
                return cls(run_dir, conn, None, version)
            except BaseException:
                conn.close()
                raise
        lock = RunLock(run_dir)
        conn = None
        try:
            conn = _connect(run_dir, writable=True)
            if version < schema.SCHEMA_VERSION:
                schema.migrate(conn, version)
            run = cls(run_dir, conn, lock)
            run._marks = marks.MarksFile(run_dir, marks.db_marks(conn))
            if loss[0]:
                run.log_event("data_loss", {"missing": loss[0], "lost_branches": {
                    str(i): c for i, c in marks.branch_ids(run_dir / GIT_NAME).items() if i in loss[1]}})
            run._prune_orphan_branches()
            if lock.stale_pid is not None:
                run.log_event("lock_takeover", {"dead_pid": lock.stale_pid, "previous_status": run.status})
                if run.status == "running":
                    run.set_status("crashed")
            space.make_reserve(run_dir)
        except BaseException:
            if conn is not None:
                conn.close()
            lock.release()
            raise
        return run

    def close(self) -> None:
        """Close the database and git store and release the lock (idempotent)."""
        with self._mutex:
            if self._agents is not None:
                self._agents.close()
                self._agents = None
            self._conn.close()
            if self._marks is not None:
                self._marks.close()
            if self._lock is not None:
                self._lock.release()

    def free_reserve(self) -> bool:
        """Give back the space kept for last words (the disk is full); True if there was some."""
        return space.free_reserve(self.path)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def writable(self) -> bool:
        return self._lock is not None and self._lock.held

    @property
    def agents(self) -> "AgentStore":
        """The git store of agent versions (opened on first use)."""
        with self._mutex:
            if self._agents is None:
                from archive.agents_git import AgentStore

                self._agents = AgentStore(self.path / GIT_NAME)
            return self._agents

    # ----- reading -------------------------------------------------------------------

    def _read_one(self, sql: str, params: tuple = ()) -> tuple | None:
        try:
            with self._mutex:
                return self._conn.execute(sql, params).fetchone()
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.path, exc) from exc

    def _read_all(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        try:
            with self._mutex:
                cur = self._conn.execute(sql, params)
                names = [d[0] for d in cur.description]
                return [dict(zip(names, row)) for row in cur.fetchall()]
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.path, exc) from exc

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Several reads that see one consistent state, even while another process writes."""
        with self._mutex:
            self._conn.execute("BEGIN")
            try:
                yield
            finally:
                self._conn.execute("COMMIT")

    @property
    def status(self) -> str:
        return self._read_one("SELECT status FROM run WHERE id = 1")[0]

    def info(self) -> RunInfo:
        """Counts and status for listings."""
        with self._snapshot():
            created, updated, status, version = self._read_one(
                "SELECT created, updated, status, hgm_version FROM run WHERE id = 1"
            )
            (n_nodes,) = self._read_one("SELECT COUNT(*) FROM nodes")
            (n_evals,) = self._read_one("SELECT COUNT(*) FROM evaluations WHERE utility IS NOT NULL")
        if status == "running" and not self.writable:
            pid = holder_pid(self.path)
            if pid is None or not pid_alive(pid):
                status = "crashed"
        return RunInfo(str(self.path), created, updated, status, version, n_nodes, n_evals)

    def tree(self) -> Tree:
        """A fresh in-memory snapshot of the tree."""
        try:
            with self._snapshot():
                return build_tree(self._conn, with_flags=self.schema_version >= 2)
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.path, exc) from exc

    def node(self, node_id: int) -> dict[str, Any]:
        """Every column of one node (UnknownNode if absent)."""
        rows = self._read_all("SELECT * FROM nodes WHERE id = ?", (node_id,))
        if not rows:
            raise UnknownNode(f"run {self.path} has no node {node_id}; see `hgm show {self.path}`")
        return rows[0]

    def evaluations(
        self, node_id: int | None = None, *, limit: int | None = None, offset: int = 0, since: float | None = None
    ) -> list[dict[str, Any]]:
        """Evaluation rows (all, or one node's), in recording order.

        `limit`/`offset` page through them; `since` keeps those finished at or after a time.
        """
        where, params = _where(("node_id = ?", node_id), ("finished >= ?", since))
        return self._read_all(f"SELECT * FROM evaluations{where} ORDER BY id{_page(limit, offset)}", params)

    def evaluation_totals(self, node_id: int | None = None) -> dict[str, Any]:
        """Counts and sums over evaluations (all, or one node's): rows, measured, resolved, tokens, cost_usd."""
        return self._totals("evaluations", node_id, {
            "rows": "COUNT(*)", "measured": "COUNT(utility)", "resolved": "COALESCE(SUM(utility), 0)",
            "tokens": "COALESCE(SUM(tokens), 0)", "cost_usd": "COALESCE(SUM(cost_usd), 0)",
        })

    def _totals(self, table: str, node_id: int | None, columns: dict[str, str]) -> dict[str, Any]:
        where, params = _where(("node_id = ?", node_id))
        row = self._read_one(f"SELECT {', '.join(columns.values())} FROM {table}{where}", params)
        return dict(zip(columns, row))

    def expansions(
        self, *, parent_id: int | None = None, child_id: int | None = None, since: float | None = None
    ) -> list[dict[str, Any]]:
        """Expansion attempts (all, of one parent, or the one that made `child_id`), in recording order."""
        where, params = _where(("parent_id = ?", parent_id), ("child_id = ?", child_id), ("finished >= ?", since))
        return self._read_all(f"SELECT * FROM expansions{where} ORDER BY id", params)

    def llm_calls(self, node_id: int | None = None, *, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
        """Recorded model calls (all, or those tagged with one node), in recording order, paged."""
        where, params = _where(("node_id = ?", node_id))
        return self._read_all(f"SELECT * FROM llm_calls{where} ORDER BY id{_page(limit, offset)}", params)

    def llm_call_totals(self, node_id: int | None = None) -> dict[str, Any]:
        """Counts and sums over model calls (all, or one node's): calls, errors, tokens, cost_usd."""
        return self._totals("llm_calls", node_id, {
            "calls": "COUNT(*)", "errors": "COUNT(error)",
            "tokens": "COALESCE(SUM(prompt_tokens + completion_tokens), 0)", "cost_usd": "COALESCE(SUM(cost_usd), 0)",
        })

    def llm_activity(self, since: float) -> list[dict[str, Any]]:
        """Model calls at or after `since`, grouped by (node_id, task_id, purpose): calls, first, last."""
        return self._read_all(
            "SELECT node_id, task_id, purpose, COUNT(*) AS calls, MIN(time) AS first, MAX(time) AS last"
            " FROM llm_calls WHERE time >= ? GROUP BY node_id, task_id, purpose ORDER BY first",
            (since,),
        )

    def find_nodes(self, text: str, limit: int = 1000) -> list[int]:
        """Ids of nodes whose id, operator, status, lesson or diagnosis contains `text` (any case)."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        like = " LIKE ?1 ESCAPE '\\'"
        columns = ("CAST(id AS TEXT)", "operator", "status", "lesson", "diagnosis")
        rows = self._read_all(
            f"SELECT id FROM nodes WHERE {' OR '.join(c + like for c in columns)} ORDER BY id LIMIT ?2",
            (pattern, limit),
        )
        return [row["id"] for row in rows]

    def timeline(self) -> list[tuple]:
        """Everything that happened, oldest first, as plain tuples for replaying a run.

        Each item is (time, kind, node_id, parent_id, task_id, status, utility, text):
        `node` (a version was added; text = operator), `expansion` (an attempt without a
        child; text = reason), `evaluation` (text = detail) and `event` (text = the event
        kind). Ties in time keep that order, then recording order.
        """
        sql = (
            "SELECT t, kind, node_id, parent_id, task_id, status, utility, text FROM ("
            " SELECT created AS t, 'node' AS kind, id AS node_id, parent_id, NULL AS task_id, status,"
            "  NULL AS utility, operator AS text, 0 AS rank, id FROM nodes"
            " UNION ALL SELECT finished, 'expansion', parent_id, parent_id, NULL, status, NULL, reason, 1, id"
            "  FROM expansions WHERE status != 'ok'"
            " UNION ALL SELECT finished, 'evaluation', node_id, NULL, task_id, status, utility, detail, 2, id"
            "  FROM evaluations"
            " UNION ALL SELECT time, 'event', NULL, NULL, NULL, NULL, NULL, kind, 3, id FROM events"
            ") ORDER BY t, rank, id"
        )
        try:
            with self._snapshot():
                return self._conn.execute(sql).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.path, exc) from exc

    def data_version(self) -> int:
        """A number that changes whenever another connection commits to hgm.db (cheap to poll)."""
        (version,) = self._read_one("PRAGMA data_version")
        return version

    def ledger(self, node_id: int | None = None) -> list[dict[str, Any]]:
        """Ledger rows (admission decisions and retirements) in recording order, `checks`
        and `producer` decoded; with `node_id`, the rows naming it as node or parent.
        Empty for runs made before the ledger existed."""
        if self.schema_version < 2:
            return []
        if node_id is None:
            rows = self._read_all("SELECT * FROM ledger ORDER BY id")
        else:
            rows = self._read_all("SELECT * FROM ledger WHERE node_id = ?1 OR parent_id = ?1 ORDER BY id", (node_id,))
        for row in rows:
            row["checks"] = json.loads(row["checks"])
            row["producer"] = json.loads(row["producer"])
        return rows

    def attempts(self, evaluation_id: int | None = None) -> list[dict[str, Any]]:
        """Attempt rows (all, or one evaluation's) in order, JSON columns decoded.

        Empty for evaluations made with one attempt, and for runs older than attempts.
        """
        if not self._has_table("attempts"):
            return []
        if evaluation_id is None:
            rows = self._read_all("SELECT * FROM attempts ORDER BY evaluation_id, idx")
        else:
            rows = self._read_all("SELECT * FROM attempts WHERE evaluation_id = ? ORDER BY idx", (evaluation_id,))
        for row in rows:
            for key in ("parents", "summary", "features"):
                try:
                    row[key] = json.loads(row[key]) if row[key] else ({} if key != "parents" else [])
                except json.JSONDecodeError:
                    pass  # kept as text: shown as written
            row["selected"] = bool(row["selected"])
        return rows

    def _has_table(self, name: str) -> bool:
        return self._read_one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)) is not None

    # ----- memory (schema 4; empty for older runs) ------------------------------------

    @property
    def has_memory(self) -> bool:
        """Whether this run's schema has the memory tables (runs made before them do not)."""
        return self.schema_version >= schema.TABLES_SINCE["memory"]

    def memory(self, **filters: Any) -> list[MemoryItem]:
        """Memory items, filtered like `archive.memory.select_items` (run_key, polarity, text, ...)."""
        if not self.has_memory:
            return []
        try:
            with self._mutex:
                return memory_sql.select_items(self._conn, **filters)
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.path, exc) from exc

    def memory_search(self, text: str, limit: int) -> list[MemoryItem]:
        """The items whose words best match `text` (FTS5, BM25), retired ones left out."""
        if not self.has_memory:
            return []
        with self._mutex:
            return memory_sql.search(self._conn, text, limit)

    def memory_used(self, expansion_id: int) -> list[MemoryItem]:
        """The items an expansion's diagnosis was shown, best first."""
        if not self.has_memory:
            return []
        with self._mutex:
            return memory_sql.used_items(self._conn, expansion_id)

    def add_memory(self, items: Iterable[MemoryItem]) -> int:
        """Store items not yet present (by uid) in one transaction; returns how many were new."""
        with self._tx() as conn:
            return memory_sql.insert_items(conn, items)

    def update_memory(self, uid: str, evidence: dict[str, Any], polarity: str) -> bool:
        """Replace an item's evidence and polarity with new measurements (one transaction)."""
        with self._tx() as conn:
            return memory_sql.update_evidence(conn, uid, evidence, polarity)

    def lineage(self, node_id: int) -> list[int]:
        """Ids from `node_id` up to the root (the node first)."""
        rows = self._read_all(
            "WITH RECURSIVE up(id, parent_id, depth) AS (SELECT id, parent_id, 0 FROM nodes WHERE id = ?"
            " UNION ALL SELECT nodes.id, nodes.parent_id, up.depth + 1 FROM nodes JOIN up ON nodes.id = up.parent_id"
            " WHERE up.depth < 100000) SELECT id FROM up ORDER BY depth",
            (node_id,),
        )
        return [r["id"] for r in rows]

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Logged events (payload decoded), optionally of one kind."""
        sql, params = "SELECT * FROM events ORDER BY id", ()
        if kind is not None:
            sql, params = "SELECT * FROM events WHERE kind = ? ORDER BY id", (kind,)
        rows = self._read_all(sql, params)
        for row in rows:
            try:
                row["payload"] = json.loads(row["payload"])
            except (TypeError, ValueError):
                row["payload"] = {"unreadable": str(row["payload"])[:200]}
            if not isinstance(row["payload"], dict):
                row["payload"] = {"unreadable": str(row["payload"])[:200]}
        return rows

    def llm_totals(self) -> tuple[int, float, int]:
        """(calls, dollars, tokens) of every model call the run has recorded."""
        row = self._read_one(
            "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(prompt_tokens + completion_tokens), 0)"
            " FROM llm_calls"
        )
        return int(row[0]), float(row[1]), int(row[2])

    def last_activity(self, since: float) -> float | None:
        """Time of the last evaluation, expansion or model call recorded at or after `since`."""
        row = self._read_one(
            "SELECT MAX(t) FROM (SELECT MAX(finished) AS t FROM evaluations WHERE finished >= ?1"
            " UNION ALL SELECT MAX(finished) FROM expansions WHERE finished >= ?1"
            " UNION ALL SELECT MAX(time) FROM llm_calls WHERE time >= ?1)",
            (since,),
        )
        return None if row is None or row[0] is None else float(row[0])

    def evaluated_pairs(self) -> set[tuple[int, str]]:
        """(node_id, task_id) pairs that have a measured (0/1) evaluation."""
        try:
            with self._mutex:
                return set(self._conn.execute("SELECT node_id, task_id FROM evaluations WHERE utility IS NOT NULL"))
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.path, exc) from exc

    # ----- writing (each call is one transaction) --------------------------------------

    def _require_writable(self) -> None:
        if not self.writable:
            raise ReadOnlyRun(f"run {self.path} is open read-only; open it with writable=True to change it")

    @contextlib.contextmanager
    def _tx(self, *tables: str) -> Iterator[sqlite3.Connection]:
        """One write transaction (mutex held); after the commit the marks of `tables` move up.

        A full disk becomes DiskFull (SQLite has rolled the transaction back).
        """
        self._require_writable()
        with self._mutex:
            try:
                with db.transaction(self._conn):
                    yield self._conn
                    found = marks.db_marks(self._conn, tables) if tables else {}
            except sqlite3.IntegrityError:
                raise
            except sqlite3.DatabaseError as exc:
                if space.is_disk_full(exc):
                    raise space.disk_full_error(self.path, resume=self.path) from exc
                raise
            if self._marks is not None and found:
                self._marks.update(found)

    def _write(self, sql: str, params: tuple = (), table: str = "events") -> int:
        with self._tx(table) as conn:
            cur = conn.execute(sql, params)
        return cur.lastrowid

    def set_status(self, status: str) -> None:
        """Set the run status (running / stopped / finished / crashed) and log it."""
        if status not in schema.RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}; expected one of {', '.join(schema.RUN_STATUSES)}")
        now = time.time()
        with self._tx("events") as conn:
            conn.execute("UPDATE run SET status = ?, updated = ? WHERE id = 1", (status, now))
            conn.execute(
                "INSERT INTO events (time, kind, payload) VALUES (?, 'status', ?)", (now, json.dumps({"status": status}))
            )

    def log_event(self, kind: str, payload: dict[str, Any] | None = None) -> int:
        """Append an event; returns its id."""
        return self._write(
            "INSERT INTO events (time, kind, payload) VALUES (?, ?, ?)",
            (time.time(), kind, json.dumps(payload or {}, default=str)),
        )

    def record_eval(self, record: EvalRecord) -> int:
        """Store one finished evaluation in one transaction; returns its row id."""
        try:
            with self._tx("evaluations") as conn:
                row_id = self._insert_eval(record)
                conn.execute("UPDATE run SET updated = ? WHERE id = 1", (record.finished,))
        except sqlite3.IntegrityError as exc:
            raise self._integrity(exc, record.node_id, record.task_id) from exc
        return row_id

    def _insert_eval(self, record: EvalRecord) -> int:
        """The evaluation's row and its attempts' rows (inside the caller's transaction)."""
        cur = self._conn.execute(_INSERT_EVAL, record.row())
        if record.attempts:
            self._conn.executemany(_INSERT_ATTEMPT, [a.row(cur.lastrowid) for a in record.attempts])
        return cur.lastrowid

    def record_evals(self, records: Iterable[EvalRecord]) -> int:
        """Store many evaluations in one transaction (bulk import, benchmarks); returns the count."""
        self._require_writable()
        records = list(records)
        try:
            with self._tx("evaluations") as conn:
                if any(r.attempts for r in records):
                    for record in records:
                        self._insert_eval(record)
                else:  # the fast path for bulk imports
                    conn.executemany(_INSERT_EVAL, [r.row() for r in records])
                conn.execute("UPDATE run SET updated = ? WHERE id = 1", (time.time(),))
        except sqlite3.IntegrityError as exc:
            raise self._integrity(exc, None, None) from exc
        return len(records)

    def record_expansion(self, record: ExpansionRecord, *, admission: AdmissionRecord | None = None,
                         memory: ExpansionMemory | None = None) -> int:
        """Store one finished expansion attempt (failed or abandoned ones; see `add_node`).

        `admission` is the gate's decision on the child it produced (a rejection), stored
        in the ledger in the same transaction, and so are the memory items the attempt
        produced and was shown (`memory`).
        """
        self._require_writable()
        if (record.child_id is None) == (record.status == "ok"):
            raise ValueError("an 'ok' expansion needs its child_id (or use add_node); a failed one has none")
        if admission is not None and (admission.decision != "rejected" or admission.parent_id != record.parent_id):
            raise ValueError("a failed expansion's admission must be a rejection of a child of the same parent")
        try:
            with self._tx("expansions") as conn:
                cur = conn.execute(_INSERT_EXPANSION, record.row())
                if admission is not None:
                    self._insert_admission(admission, None, "", cur.lastrowid)
                memory_sql.store_expansion_memory(conn, memory, cur.lastrowid, None)
                conn.execute("UPDATE run SET updated = ? WHERE id = 1", (record.finished,))
        except sqlite3.IntegrityError as exc:
            raise self._integrity(exc, record.parent_id, None) from exc
        return cur.lastrowid

    def add_node(
        self,
        parent_id: int,
        agent_dir: Path,
        operator: str = "",
        lesson: str = "",
        diagnosis: str = "",
        *,
        expansion: ExpansionRecord | None = None,
        admission: AdmissionRecord | None = None,
        memory: ExpansionMemory | None = None,
        status: str = "active",
        second_parent_id: int | None = None,
    ) -> int:
        """Commit `agent_dir` as a child of `parent_id` and add its node row; returns the new id.

        Git first (branch node/<id>), then the DB row, the successful `expansion` record, the
        gate's `admission` decision (ledger) and the expansion's `memory` items if given, in
        one transaction. A crash
        between the two leaves a branch without a row, which the next writable open prunes.
        Text is stored as given: redact secrets before calling. A recombined child has a
        second parent (`second_parent_id`, else the expansion's): its commit is a merge of
        both parents' commits, while the tree stays a tree by `parent_id`.
        """
        self._require_writable()
        if expansion is not None and (expansion.status != "ok" or expansion.parent_id != parent_id):
            raise ValueError("the expansion of a new node must have status 'ok' and the same parent")
        if admission is not None and (admission.decision != "accepted" or admission.parent_id != parent_id):
            raise ValueError("a new node's admission must be an acceptance by the same parent")
        if second_parent_id is None and expansion is not None:
            second_parent_id = expansion.second_parent_id
        with self._mutex:
            parent = self._read_one("SELECT commit_sha FROM nodes WHERE id = ?", (parent_id,))
            if parent is None:
                raise UnknownNode(f"run {self.path} has no node {parent_id} to expand")
            parents = [parent[0]]
            if second_parent_id is not None:
                second = self._read_one("SELECT commit_sha FROM nodes WHERE id = ?", (second_parent_id,))
                if second is None or second_parent_id == parent_id:
                    raise UnknownNode(f"run {self.path} has no node {second_parent_id} to be a second parent")
                parents.append(second[0])
            (node_id,) = self._read_one("SELECT COALESCE(MAX(id), -1) + 1 FROM nodes")
            also = f" and node {second_parent_id}" if second_parent_id is not None else ""
            message = f"node {node_id}: {operator or 'child'} of node {parent_id}{also}"
            try:
                commit = self.agents.add_version(node_id, Path(agent_dir), parents, message)
            except (ArchiveError, OSError) as exc:
                with contextlib.suppress(ArchiveError):
                    self.agents.delete_branch(node_id)
                if space.is_disk_full(exc):
                    raise space.disk_full_error(self.path, resume=self.path) from exc
                raise
            try:
                now = time.time()
                with self._tx("nodes", "expansions") as conn:
                    conn.execute(
                        "INSERT INTO nodes (id, parent_id, commit_sha, created, status, operator, lesson, diagnosis,"
                        " second_parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (node_id, parent_id, commit, now, status, operator, lesson, diagnosis, second_parent_id),
                    )
                    expansion_id = None
                    if expansion is not None:
                        expansion_id = conn.execute(_INSERT_EXPANSION, expansion.row(node_id)).lastrowid
                    if admission is not None:
                        self._insert_admission(admission, node_id, commit, expansion_id)
                    if memory is not None:
                        if expansion_id is None:
                            raise ValueError("memory items of a new node need its expansion record")
                        memory_sql.store_expansion_memory(conn, memory, expansion_id, node_id)
                    conn.execute("UPDATE run SET updated = ? WHERE id = 1", (now,))
            except BaseException:
                with contextlib.suppress(ArchiveError):
                    self.agents.delete_branch(node_id)  # else pruned at the next writable open
                raise
        return node_id

    def _insert_admission(
        self, admission: AdmissionRecord, child_id: int | None, child_commit: str, expansion_id: int | None
    ) -> None:
        """One ledger row for `admission` (inside the caller's transaction)."""
        parent = self._conn.execute("SELECT commit_sha FROM nodes WHERE id = ?", (admission.parent_id,)).fetchone()
        if parent is None:
            raise UnknownNode(f"run {self.path} has no node {admission.parent_id}")
        self._conn.execute(
            _INSERT_LEDGER,
            admission.row(parent[0], child_id, child_commit, expansion_id),
        )

    def retire(self, node_id: int, why: str, by: dict[str, Any] | None = None) -> int:
        """Take node `node_id` and its clade out of expansion and of the final choice.

        Nothing is deleted: the node's status becomes `retired` and a ledger row records
        why and by whom (`by`, e.g. {"user": ..., "command": ...}); returns the row id. The
        memory items the run made about the clade (its nodes, or attempts to expand them)
        are marked retired in the same transaction.
        """
        self._require_writable()
        why = why.strip()
        if not why:
            raise ArchiveError("say why the node is retired (a non-empty reason)")
        with self._mutex:
            row = self._read_one("SELECT parent_id, commit_sha, status FROM nodes WHERE id = ?", (node_id,))
            if row is None:
                raise UnknownNode(f"run {self.path} has no node {node_id}; see `hgm show {self.path}`")
            parent_id, commit, status = row
            if parent_id is None:
                raise ArchiveError(f"node {node_id} is the root of the run and cannot be retired")
            if status == schema.RETIRED_NODE_STATUS:
                raise ArchiveError(f"node {node_id} is already retired")
            now = time.time()
            with self._tx("nodes"):
                self._conn.execute("UPDATE nodes SET status = ? WHERE id = ?", (schema.RETIRED_NODE_STATUS, node_id))
                cur = self._conn.execute(
                    "INSERT INTO ledger (time, kind, decision, node_id, parent_id, child_commit, reason, producer)"
                    " VALUES (?, 'retirement', 'retired', ?, ?, ?, ?, ?)",
                    (now, node_id, parent_id, commit, why, json.dumps(by or {}, default=str)),
                )
                clade = "WITH RECURSIVE clade(id) AS (SELECT ? UNION SELECT nodes.id FROM nodes JOIN clade ON nodes.parent_id = clade.id)"
                self._conn.execute(
                    f"{clade} UPDATE memory SET retired = 1, updated = ? WHERE run_key = ? AND retired = 0"
                    " AND (node_id IN (SELECT id FROM clade) OR parent_id IN (SELECT id FROM clade))",
                    (node_id, now, self.key),
                )
                self._conn.execute("UPDATE run SET updated = ? WHERE id = 1", (now,))
        return cur.lastrowid

    def import_nodes(self, nodes: Iterable[tuple[int, str]]) -> list[int]:
        """Bulk-add (parent_id, operator) nodes that reuse their parent's commit, in one transaction.

        No git commit is made: for simulations and benchmarks, where the tree's shape and
        evaluations matter but the agents' code does not. Parents must exist or come
        earlier in `nodes`. Returns the new ids in order.
        """
        self._require_writable()
        nodes = list(nodes)
        with self._mutex:
            (first,) = self._read_one("SELECT COALESCE(MAX(id), -1) + 1 FROM nodes")
            commits = dict(self._conn.execute("SELECT id, commit_sha FROM nodes"))
            rows, now = [], time.time()
            for offset, (parent_id, operator) in enumerate(nodes):
                if parent_id not in commits:
                    raise UnknownNode(f"run {self.path} has no node {parent_id} to import a child of")
                node_id = first + offset
                commits[node_id] = commits[parent_id]
                rows.append((node_id, parent_id, commits[parent_id], now, operator))
            with self._tx("nodes") as conn:
                conn.executemany(
                    "INSERT INTO nodes (id, parent_id, commit_sha, created, operator) VALUES (?, ?, ?, ?, ?)", rows
                )
        return [row[0] for row in rows]

    def record_llm_call(
        self,
        *,
        model: str = "",
        purpose: str = "",
        node_id: int | None = None,
        task_id: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost_usd: float = 0.0,
        latency_s: float | None = None,
        error: str | None = None,
        at: float | None = None,
    ) -> int:
        """Store one LLM call with its tags; returns its row id."""
        return self._write(
            "INSERT INTO llm_calls (time, node_id, task_id, purpose, model, prompt_tokens, completion_tokens,"
            " cost_usd, latency_s, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (at or time.time(), node_id, task_id, purpose, model, prompt_tokens, completion_tokens,
             cost_usd, latency_s, error),
            table="llm_calls",
        )

    def _integrity(self, exc: sqlite3.IntegrityError, node_id: int | None, task_id: str | None) -> ArchiveError:
        text = str(exc)
        if "UNIQUE" in text:
            what = f"node {node_id} on task {task_id!r}" if node_id is not None else "a (node, task) pair"
            return DuplicateEvaluation(f"{what} already has a measured evaluation in {self.path}")
        if "FOREIGN KEY" in text:
            return UnknownNode(f"run {self.path} has no node {node_id}" if node_id is not None else f"unknown node id in {self.path}")
        return ArchiveError(f"the archive refused a row ({text})")

    def _prune_orphan_branches(self) -> None:
        """Delete node/<id> branches that have no DB row (left by a crash inside add_node)."""
        known = {row[0] for row in self._conn.execute("SELECT id FROM nodes")}
        for node_id in self.agents.node_ids():
            if node_id not in known:
                self.agents.delete_branch(node_id)

    # ----- agent versions ------------------------------------------------------------

    def commit_of(self, node_id: int) -> str:
        return self.node(node_id)["commit_sha"]

    def checkout(self, node_id: int, dest: Path) -> None:
        """Write node `node_id`'s agent files into `dest` (must not exist or be empty)."""
        with self._mutex:
            self.agents.checkout(self.commit_of(node_id), Path(dest))

    def diff(self, old_id: int, new_id: int) -> str:
        """What evolution changed from one version to another, as a unified diff."""
        with self._mutex:
            return self.agents.diff(self.commit_of(old_id), self.commit_of(new_id))

    def export(self, node_id: int, dest: Path, fmt: str = "dir") -> Path:
        """Write a version as a runnable directory, a patch against the seed, or a git bundle.

        Written under a temporary name next to `dest` and renamed into place, so an
        interrupted export leaves nothing behind. `dest` must not exist.
        """
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
        dest = Path(dest)
        if dest.exists() or dest.is_symlink():
            raise FileExistsError(f"{dest} already exists; choose a new path or remove it")
        commit = self.commit_of(node_id)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.partial-{os.getpid()}"
        with self._mutex:
            self._export_to(node_id, commit, fmt, tmp, dest)
        return dest

    def _export_to(self, node_id: int, commit: str, fmt: str, tmp: Path, dest: Path) -> None:
        try:
            if fmt == "dir":
                self.agents.checkout(commit, tmp)
            elif fmt == "patch":
                root = self._read_one("SELECT commit_sha FROM nodes WHERE parent_id IS NULL ORDER BY id LIMIT 1")[0]
                tmp.write_text(self.agents.diff(root, commit))
            else:
                self.agents.bundle(node_id, tmp)
            os.rename(tmp, dest)
        except BaseException:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            raise


def _remove_dead_creations(run_dir: Path) -> None:
    """Remove hidden half-made copies of `run_dir` whose creating process was killed."""
    for partial in run_dir.parent.glob(f".{run_dir.name}.creating-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def _connect(run_dir: Path, *, writable: bool) -> sqlite3.Connection:
    try:
        return db.connect(run_dir / DB_NAME, writable=writable)
    except sqlite3.DatabaseError as exc:
        raise _corrupt(run_dir, exc) from exc


def _corrupt(run_dir: Path, exc: Exception) -> CorruptDatabase:
    return CorruptDatabase(f"{Path(run_dir) / DB_NAME} is unreadable ({exc}); restore it from a backup or start a new run")


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _insert(table: str, columns: str) -> str:
    return f"INSERT INTO {table} ({columns}) VALUES ({_marks(columns.count(',') + 1)})"


_INSERT_EVAL = _insert("evaluations", EVAL_COLUMNS)
_INSERT_EXPANSION = _insert("expansions", EXPANSION_COLUMNS)
_INSERT_ATTEMPT = _insert("attempts", ATTEMPT_COLUMNS)
_INSERT_LEDGER = _insert("ledger", LEDGER_COLUMNS)


def _where(*conditions: tuple[str, Any]) -> tuple[str, tuple]:
    """A WHERE clause from (sql, value) pairs whose value is not None, and its parameters."""
    used = [(sql, value) for sql, value in conditions if value is not None]
    if not used:
        return "", ()
    return " WHERE " + " AND ".join(sql for sql, _ in used), tuple(value for _, value in used)


def _page(limit: int | None, offset: int) -> str:
    if limit is None:
        return f" LIMIT -1 OFFSET {int(offset)}" if offset else ""
    return f" LIMIT {int(limit)} OFFSET {int(offset)}"
def _digest(text: str) -> str:
    return hashlib.sha256(str(text).encode("utf-8", "surrogatepass")).hexdigest()


def _find_loss(run_dir: Path) -> tuple[list[str], list[int]]:
    """What the database lost compared with the marks file and agents.git (read-only).

    The marks are read before the database, so a live writer's newer commits never look lost.
    """
    written = marks.read_marks(run_dir)
    try:
        conn = db.connect_readonly(run_dir / DB_NAME)
    except sqlite3.DatabaseError as exc:
        raise _corrupt(run_dir, exc) from exc
    try:
        found = marks.db_marks(conn)
        node_ids = {row[0] for row in conn.execute("SELECT id FROM nodes")}
    except sqlite3.DatabaseError as exc:
        raise _corrupt(run_dir, exc) from exc
    finally:
        conn.close()
    return marks.find_loss(written, found, node_ids, marks.branch_ids(run_dir / GIT_NAME))


def _loss_message(run_dir: Path, missing: list[str]) -> str:
    return (f"{run_dir / DB_NAME} holds less than this run wrote ({'; '.join(missing)}): its write-ahead log "
            f"{DB_NAME}-wal was deleted or cut short. Put the original {DB_NAME}-wal back next to {DB_NAME} and "
            f"try again, or continue without the lost records: hgm resume {run_dir} --accept-loss")
