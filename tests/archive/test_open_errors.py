"""Every way a path can fail to be a run: one-line ArchiveError, and nothing written."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from archive import CorruptDatabase, MissingGitStore, NewerSchema, NotARun, Run, SCHEMA_VERSION
from tests.archive.helpers import snapshot


@pytest.fixture
def closed_run(run: Run) -> Path:
    path = run.path
    run.close()
    for leftover in ("hgm.db-wal", "hgm.db-shm"):
        assert not (path / leftover).exists(), "a clean close leaves no WAL behind"
    return path


def _set_user_version(db: Path, version: int) -> None:
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.close()


def break_not_a_run(tmp_path: Path, run_dir: Path) -> Path:
    target = tmp_path / "plain"
    target.mkdir()
    (target / "notes.txt").write_text("hello")
    return target


def break_garbage_db(tmp_path: Path, run_dir: Path) -> Path:
    (run_dir / "hgm.db").write_bytes(b"this is not a database at all" * 10)
    return run_dir


def break_damaged_pages(tmp_path: Path, run_dir: Path) -> Path:
    db = run_dir / "hgm.db"
    data = bytearray(db.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the schema page, header kept
    db.write_bytes(bytes(data))
    return run_dir


def break_foreign_sqlite(tmp_path: Path, run_dir: Path) -> Path:
    (run_dir / "hgm.db").unlink()
    conn = sqlite3.connect(run_dir / "hgm.db")
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    return run_dir


def break_newer_schema(tmp_path: Path, run_dir: Path) -> Path:
    _set_user_version(run_dir / "hgm.db", SCHEMA_VERSION + 1)
    return run_dir


def break_missing_git(tmp_path: Path, run_dir: Path) -> Path:
    shutil.rmtree(run_dir / "agents.git")
    return run_dir


def break_missing_dir(tmp_path: Path, run_dir: Path) -> Path:
    return tmp_path / "does-not-exist"


def break_file_not_dir(tmp_path: Path, run_dir: Path) -> Path:
    return run_dir / "hgm.db"


CASES = [
    (break_not_a_run, NotARun, "not an hgm run"),
    (break_missing_dir, NotARun, "does not exist"),
    (break_file_not_dir, NotARun, "is a file"),
    (break_foreign_sqlite, NotARun, "not an hgm run database"),
    (break_garbage_db, CorruptDatabase, "not an SQLite database"),
    (break_damaged_pages, CorruptDatabase, "corrupt"),
    (break_newer_schema, NewerSchema, "upgrade hgm"),
    (break_missing_git, MissingGitStore, "agents.git"),
]


@pytest.mark.parametrize(("breaker", "error", "words"), CASES, ids=[c[0].__name__ for c in CASES])
@pytest.mark.parametrize("writable", [False, True], ids=["read", "write"])
def test_open_fails_cleanly_and_writes_nothing(
    tmp_path: Path, closed_run: Path, breaker, error, words, writable: bool
) -> None:
    target = breaker(tmp_path, closed_run)
    before = snapshot(tmp_path)
    with pytest.raises(error, match=words) as info:
        Run.open(target, writable=writable)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300
    assert snapshot(tmp_path) == before
