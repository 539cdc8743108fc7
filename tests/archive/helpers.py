"""Helpers for archive tests: a small agent tree, a snapshot proving nothing was written, older schemas."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def make_agent(path: Path, body: str = "print('seed')\n") -> Path:
    """A tiny agent source tree with a package, an executable script and a byte-code cache."""
    (path / "agent").mkdir(parents=True)
    (path / "agent" / "__init__.py").write_text("")
    (path / "agent" / "main.py").write_text(body)
    script = path / "run.sh"
    script.write_text("#!/bin/sh\necho run\n")
    script.chmod(0o755)
    (path / "agent" / "__pycache__").mkdir()
    (path / "agent" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\x00junk")
    return path


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root (and root itself) with size and mtime, to prove nothing was written."""
    result = {}
    if root.exists():
        result["."] = (0, root.stat().st_mtime_ns)
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                full = Path(dirpath) / name
                st = full.lstat()
                result[str(full.relative_to(root))] = (st.st_size if full.is_file() else 0, st.st_mtime_ns)
    return result


def without_shm(snap: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """A reader maps hgm.db-shm (SQLite's shared index) and may touch it; it holds no data."""
    return {k: v for k, v in snap.items() if not k.endswith("hgm.db-shm")}


def fill_disk(directory: Path) -> Path:
    """Fill the file system holding `directory` to the last byte; return the filler file."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for size in (1 << 20, 65536, 4096, 512, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError:
                pass
    return filler


# What undoes each migration: UNDO[v] turns a database of schema v + 1 back into one of schema v.
UNDO = {
    3: "DROP TABLE memory_uses; DROP TABLE memory_fts; DROP TABLE memory;",
    2: """
        DROP TABLE attempts;
        CREATE TABLE nodes_v1 (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES nodes(id),
            commit_sha TEXT NOT NULL, created REAL NOT NULL, status TEXT NOT NULL DEFAULT 'active',
            operator TEXT NOT NULL DEFAULT '', lesson TEXT NOT NULL DEFAULT '', diagnosis TEXT NOT NULL DEFAULT '');
        INSERT INTO nodes_v1 SELECT id, parent_id, commit_sha, created, status, operator, lesson, diagnosis FROM nodes;
        DROP TABLE nodes;
        ALTER TABLE nodes_v1 RENAME TO nodes;
        CREATE INDEX nodes_parent ON nodes(parent_id);
        CREATE TABLE expansions_v1 (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES nodes(id),
            child_id INTEGER REFERENCES nodes(id), status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
            cost_usd REAL NOT NULL DEFAULT 0, tokens INTEGER NOT NULL DEFAULT 0, started REAL, finished REAL NOT NULL,
            lesson TEXT NOT NULL DEFAULT '', diagnosis TEXT NOT NULL DEFAULT '');
        INSERT INTO expansions_v1 SELECT id, parent_id, child_id, status, reason, cost_usd, tokens, started, finished,
            lesson, diagnosis FROM expansions;
        DROP TABLE expansions;
        ALTER TABLE expansions_v1 RENAME TO expansions;""",
    1: """
        DROP TABLE ledger;
        CREATE TABLE ev1 (
            id INTEGER PRIMARY KEY, node_id INTEGER NOT NULL REFERENCES nodes(id), task_id TEXT NOT NULL,
            utility INTEGER CHECK (utility IN (0, 1)),
            status TEXT NOT NULL CHECK (status IN ('resolved', 'unresolved', 'empty_patch', 'patch_failed',
                                                  'timeout', 'error_infra', 'abandoned')),
            started REAL, finished REAL NOT NULL, agent_s REAL, grade_s REAL, total_s REAL,
            tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0, trajectory_path TEXT,
            log_path TEXT, detail TEXT NOT NULL DEFAULT '',
            CHECK ((utility = 1) = (status = 'resolved')),
            CHECK ((utility IS NULL) = (status IN ('error_infra', 'abandoned'))));
        INSERT INTO ev1 SELECT id, node_id, task_id, utility, status, started, finished, agent_s, grade_s,
                               total_s, tokens, cost_usd, trajectory_path, log_path, detail FROM evaluations;
        DROP TABLE evaluations;
        ALTER TABLE ev1 RENAME TO evaluations;
        CREATE INDEX evaluations_node ON evaluations(node_id);
        CREATE UNIQUE INDEX evaluations_measured ON evaluations(node_id, task_id) WHERE utility IS NOT NULL;""",
}


def downgrade(db_path: Path, version: int) -> None:
    """Make a current database look exactly like one an older hgm wrote with schema `version`."""
    current = max(UNDO) + 1
    steps = "\n".join(UNDO[v] for v in range(current - 1, version - 1, -1))
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == current, "UNDO does not start at this schema"
        conn.executescript(f"PRAGMA foreign_keys = OFF; BEGIN; {steps}\nPRAGMA user_version = {version}; COMMIT;")
    finally:
        conn.close()
