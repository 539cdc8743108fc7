"""kill -9 mid-run, then `hgm resume`: the budget is spent exactly, nothing twice, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scripted import write_script

REPO = Path(__file__).resolve().parents[2]
TASKS = "hgm-mini__iniconf-1,hgm-mini__iniconf-2,hgm-mini__iniconf-3,hgm-mini__iniconf-4,hgm-mini__iniconf-5,hgm-mini__iniconf-6"
BUDGET = 10


def measured(run_dir: Path) -> list[tuple[int, int, str]]:
    """(row id, node, task) of every measured evaluation; [] while the DB is not there yet."""
    if not (run_dir / "hgm.db").exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{run_dir / 'hgm.db'}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(
                "SELECT id, node_id, task_id FROM evaluations WHERE utility IS NOT NULL ORDER BY id"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []


def env() -> dict[str, str]:
    return {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


@pytest.mark.e2e
@pytest.mark.slow
def test_kill_9_then_resume_spends_the_budget_exactly(tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.json", solve_sleep=1.0)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hgm", "run", "--run-dir", str(run_dir), "--model", f"scripted:{script}",
         "--sandbox", "local", "--tasks", TASKS, "--budget-evals", str(BUDGET), "--workers", "2"],
        cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    deadline = time.monotonic() + 300
    try:
        while len(measured(run_dir)) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: hgm and its agents
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stderr.close()
    before = measured(run_dir)
    assert 3 <= len(before) < BUDGET, "kill came too late to test anything"

    done = subprocess.run([sys.executable, "-m", "hgm", "resume", str(run_dir), "--json"], cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    after = measured(run_dir)
    pairs = [(n, t) for _, n, t in after]
    assert len(after) == BUDGET == summary["evaluations"]
    assert len(set(pairs)) == BUDGET  # no (node, task) pair twice
    assert set(before) <= set(after)  # every evaluation finished before the kill survived
    assert summary["status"] == "finished" and summary["stop_reason"] == "budget_evals"
    conn = sqlite3.connect(f"file:{run_dir / 'hgm.db'}?mode=ro", uri=True)
    try:
        kinds = [r[0] for r in conn.execute("SELECT kind FROM events ORDER BY id")]
        statuses = [json.loads(r[0])["status"] for r in conn.execute("SELECT payload FROM events WHERE kind = 'status'")]
    finally:
        conn.close()
    assert "lock_takeover" in kinds and "crashed" in statuses and statuses[-1] == "finished"


@pytest.mark.e2e
@pytest.mark.slow
def test_ctrl_c_once_finishes_work_in_flight_then_resume_completes(tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.json", solve_sleep=2.0)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hgm", "run", "--run-dir", str(run_dir), "--model", f"scripted:{script}",
         "--sandbox", "local", "--tasks", TASKS, "--budget-evals", "8", "--workers", "2"],
        cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    try:
        while len(measured(run_dir)) < 1:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # once: stop starting work, let work in flight finish
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()[-2000:]
    assert b"hgm resume" in err
    conn = sqlite3.connect(f"file:{run_dir / 'hgm.db'}?mode=ro", uri=True)
    try:
        abandoned = conn.execute("SELECT COUNT(*) FROM evaluations WHERE status = 'abandoned'").fetchone()[0]
        status = conn.execute("SELECT status FROM run").fetchone()[0]
    finally:
        conn.close()
    assert abandoned == 0 and status == "stopped"
    stopped_at = measured(run_dir)
    assert 1 <= len(stopped_at) < 8
    done = subprocess.run([sys.executable, "-m", "hgm", "resume", str(run_dir), "--json"], cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    after = measured(run_dir)
    assert len(after) == 8 and len({(n, t) for _, n, t in after}) == 8 and set(stopped_at) <= set(after)
