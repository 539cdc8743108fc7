"""Archive faults: a lost or truncated WAL, a corrupt stored config, a full disk.

Each test injects the fault for real: the writer is SIGKILLed so committed data sits in
hgm.db-wal, the WAL is deleted or cut short on disk, bytes of hgm.db are overwritten, and
a tiny tmpfs fills up.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from archive import DiskFull, EvalRecord, ExpansionRecord, Run
from archive.errors import CorruptDatabase, LostData
from archive.space import RESERVE_NAME, is_disk_full
from tests.archive.helpers import fill_disk, make_agent, snapshot

REPO = Path(__file__).resolve().parents[2]

# a writer that commits two nodes and a few evaluations, then dies by SIGKILL
KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from archive import Run, EvalRecord, ExpansionRecord
    run = Run.open(sys.argv[1], writable=True)
    for i in range(2):
        run.add_node(i, sys.argv[2], "improve", expansion=ExpansionRecord(i, "ok"))
    for t in range(5):
        run.record_eval(EvalRecord(t % 3, f"task-{t}", "resolved" if t % 2 else "unresolved"))
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def crashed_run(tmp_path: Path) -> Path:
    """A run whose writer was killed with committed data only in hgm.db-wal."""
    seed = make_agent(tmp_path / "seed")
    with Run.create(tmp_path / "run", {"k": 1}, seed) as run:
        run.record_eval(EvalRecord(0, "before", "unresolved"))
        path = run.path
    # a clean close checkpoints everything into hgm.db and removes the WAL
    assert not (path / "hgm.db-wal").exists()
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path), str(seed)], cwd=REPO)
    assert proc.returncode == -signal.SIGKILL
    assert (path / "hgm.db-wal").stat().st_size > 0
    return path


def test_a_crashed_run_with_its_wal_opens_whole(tmp_path: Path) -> None:
    path = crashed_run(tmp_path)
    with Run.open(path) as run:
        assert len(run.tree()) == 3 and len(run.evaluations()) == 6
    with Run.open(path, writable=True) as run:
        assert len(run.tree()) == 3


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_lost_wal_is_an_error_not_fewer_nodes(tmp_path: Path, damage: str) -> None:
    path = crashed_run(tmp_path)
    wal = path / "hgm.db-wal"
    if damage == "delete":
        wal.unlink()
        (path / "hgm.db-shm").unlink(missing_ok=True)
    else:  # cut in the middle of the last frames: SQLite silently drops the torn tail
        os.truncate(wal, wal.stat().st_size // 2)
    before = snapshot(path)
    for writable in (False, True):
        with pytest.raises(LostData) as err:
            Run.open(path, writable=writable)
        message = str(err.value)
        assert "hgm.db-wal" in message and "--accept-loss" in message and "\n" not in message
    after = snapshot(path)
    after.pop("hgm.db-shm", None), before.pop("hgm.db-shm", None)  # SQLite's index of the WAL, rebuilt by readers
    assert after == before  # refused before anything was touched: the WAL can still be put back
    if damage == "delete":
        assert "node(s) 1, 2" in message  # their branches outlived their rows


def test_accepting_the_loss_keeps_the_ids_apart_and_logs_it(tmp_path: Path) -> None:
    path = crashed_run(tmp_path)
    (path / "hgm.db-wal").unlink()
    (path / "hgm.db-shm").unlink(missing_ok=True)
    with Run.open(path, writable=True, accept_loss=True) as run:
        assert len(run.tree()) == 1
        loss = run.events("data_loss")
        assert len(loss) == 1 and set(loss[0]["payload"]["lost_branches"]) == {"1", "2"}
        assert run.agents.node_ids() == [0]  # the orphaned branches went, their commits are in the event
        new = run.add_node(0, make_agent(tmp_path / "again"), "improve")
        assert new == 1
    with Run.open(path) as run:  # from now on a consistent run again
        assert len(run.tree()) == 2


def test_one_orphan_branch_after_a_crash_inside_add_node_is_no_loss(tmp_path: Path) -> None:
    seed = make_agent(tmp_path / "seed")
    with Run.create(tmp_path / "run", {"k": 1}, seed) as run:
        run.agents.add_version(1, seed, run.commit_of(0), "killed before its row")  # git first, then the row
        path = run.path
    with Run.open(path) as run:
        assert len(run.tree()) == 1
    with Run.open(path, writable=True) as run:
        assert run.agents.node_ids() == [0] and run.events("data_loss") == []


def overwrite_config_byte(path: Path, old: bytes, new: bytes) -> None:
    raw = (path / "hgm.db").read_bytes()
    assert raw.count(old) == 1
    (path / "hgm.db").write_bytes(raw.replace(old, new))
    conn = sqlite3.connect(path / "hgm.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"  # SQLite sees nothing wrong
    conn.close()


@pytest.mark.parametrize("old,new", [(b'"evals": 6', b'"evals"; 6'), (b'"evals": 6', b'"evals": 9')],
                         ids=["json-broken", "value-changed"])
def test_a_corrupt_stored_config_is_a_one_line_error(tmp_path: Path, old: bytes, new: bytes) -> None:
    seed = make_agent(tmp_path / "seed")
    with Run.create(tmp_path / "run", {"budget": {"evals": 6}, "model": "m"}, seed) as run:
        path = run.path
    overwrite_config_byte(path, old, new)
    for writable in (False, True):
        with pytest.raises(CorruptDatabase, match="run config") as err:
            Run.open(path, writable=writable)
        assert "\n" not in str(err.value)


# ---------------------------------------------------------------- a full disk, for real


def test_a_full_disk_rolls_back_and_the_run_goes_on_after_space_is_freed(tmp_path: Path, tiny_fs) -> None:
    disk = tiny_fs(3072)
    seed = make_agent(tmp_path / "seed")
    run = Run.create(disk / "run", {"k": 1}, seed)
    assert (run.path / RESERVE_NAME).is_file()
    run.record_eval(EvalRecord(0, "kept", "resolved"))
    filler = fill_disk(disk)
    written, error = 0, None
    try:
        for i in range(10_000):
            run.record_eval(EvalRecord(0, f"t{i}", "unresolved", detail="x" * 3000))
            written += 1
    except DiskFull as exc:
        error = exc
    assert error is not None and str(disk / "run") in str(error) and "free at least" in str(error)
    with pytest.raises(DiskFull):  # a child version cannot be committed either, and leaves no branch
        run.add_node(0, seed, "improve")
    assert run.agents.node_ids() == [0]
    assert run.free_reserve()  # room for the last words
    run.set_status("stopped")
    run.close()
    filler.unlink()
    with Run.open(disk / "run", writable=True) as again:  # consistent, nothing half-written
        rows = again.evaluations()
        assert [r["task_id"] for r in rows] == ["kept"] + [f"t{i}" for i in range(written)]
        assert again.status == "stopped"
        again.add_node(0, seed, "improve")
    conn = sqlite3.connect(disk / "run" / "hgm.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_a_full_disk_at_creation_leaves_nothing_behind(tmp_path: Path, tiny_fs) -> None:
    disk = tiny_fs(1024)
    seed = make_agent(tmp_path / "seed")
    (seed / "agent" / "blob.bin").write_bytes(os.urandom(1_500_000))  # does not compress: too big to fit
    with pytest.raises(DiskFull) as err:
        Run.create(disk / "run", {"k": 1}, seed)
    assert str(disk) in str(err.value)
    assert list(disk.iterdir()) == []


def test_disk_full_is_recognised_in_every_form() -> None:
    import errno

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    full = sqlite3.OperationalError("database or disk is full")
    assert is_disk_full(full)
    try:
        try:
            raise full
        except sqlite3.OperationalError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("bad"))


def test_expansion_records_survive_a_full_disk_check(tmp_path: Path) -> None:
    """The marks move with every table, so losing an expansion row is detected too."""
    seed = make_agent(tmp_path / "seed")
    with Run.create(tmp_path / "run", {"k": 1}, seed) as run:
        run.record_expansion(ExpansionRecord(0, "failed", reason="x"))
        path = run.path
    marks = (path / "hgm.marks").read_text()
    assert "expansions=1" in marks and "nodes=0" in marks
