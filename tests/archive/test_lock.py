"""The run lock: one writer at a time; a writer killed with -9 leaves a lock we take over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from archive import Run, RunLocked
from archive.lock import holder_pid

REPO = Path(__file__).resolve().parents[2]

HOLDER = textwrap.dedent(
    """
    import sys, time
    from archive import Run
    run = Run.open(sys.argv[1], writable=True)
    run.set_status("running")
    print("locked", flush=True)
    time.sleep(120)
    """
)


def _start_holder(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_in_same_process_is_refused(run: Run) -> None:
    with pytest.raises(RunLocked, match=f"process {os.getpid()}"):
        Run.open(run.path, writable=True)
    with Run.open(run.path) as reader:  # readers are always welcome
        assert reader.info().nodes == 1


def test_lock_released_on_close(run: Run) -> None:
    path = run.path
    run.close()
    assert holder_pid(path) is None
    with Run.open(path, writable=True) as again:
        assert again.writable
        assert again.events("lock_takeover") == []


def test_live_writer_in_other_process_refused_and_stale_lock_taken_over(run: Run) -> None:
    path = run.path
    run.close()
    proc = _start_holder(path)
    try:
        with pytest.raises(RunLocked, match=f"process {proc.pid}"):
            Run.open(path, writable=True)
        with Run.open(path) as reader:
            assert reader.info().status == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert holder_pid(path) == proc.pid  # the dead writer's pid is still in the file
    with Run.open(path) as reader:
        assert reader.info().status == "crashed"  # listing sees the writer is gone
    with Run.open(path, writable=True) as writer:
        assert writer.status == "crashed"
        [event] = writer.events("lock_takeover")
        assert event["payload"] == {"dead_pid": proc.pid, "previous_status": "running"}
        assert holder_pid(path) == os.getpid()
