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
BUDGET = 8


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
    script = write_script(tmp_path / "script.json", solve_sleep=1.5)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hgm", "run", "--run-dir", str(run_dir), "--model", f"scripted:{script}",
         "--sandbox", "local", "--tasks", TASKS, "--budget-evals", "6", "--workers", "2"],
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
    assert 1 <= len(stopped_at) < 6
    done = subprocess.run([sys.executable, "-m", "hgm", "resume", str(run_dir), "--json"], cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    after = measured(run_dir)
    assert len(after) == 6 and len({(n, t) for _, n, t in after}) == 6 and set(stopped_at) <= set(after)


def events(run_dir: Path, kind: str) -> list[dict]:
    conn = sqlite3.connect(f"file:{run_dir / 'hgm.db'}?mode=ro", uri=True, timeout=5)
    try:
        return [json.loads(r[0]) for r in conn.execute("SELECT payload FROM events WHERE kind = ? ORDER BY id", (kind,))]
    finally:
        conn.close()


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.ray
def test_ray_worker_killed_mid_evaluation_is_retried_then_ctrl_c_and_resume(tmp_path: Path, ray_cluster) -> None:
    """A Ray worker process killed during an evaluation: Ray runs the job again, the archive holds
    it once, the run goes on; Ctrl-C stops it as with threads and `hgm resume` finishes it on Ray."""
    budget = 8
    script = write_script(tmp_path / "script.json", solve_sleep=3.0)
    run_dir = tmp_path / "run"
    run_env = {**env(), **ray_cluster.env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hgm", "run", "--run-dir", str(run_dir), "--model", f"scripted:{script}",
         "--sandbox", "local", "--tasks", TASKS, "--budget-evals", str(budget), "--workers", "2",
         "--executor", "ray", "--ray-address", ray_cluster.address],
        cwd=REPO, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    try:
        while not (pids := ray_cluster.worker_pids("ray::hgm eval")):  # an evaluation runs on the worker node
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no evaluation started on the worker node"
            time.sleep(0.1)
        time.sleep(1.0)  # inside the agent's 3 s step
        os.kill(pids[0], signal.SIGKILL)
        while not events(run_dir, "job_retried") or len(measured(run_dir)) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the killed job was not retried"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # once: work in flight finishes, then the run stops
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == 130, err.decode()[-2000:]
    stopped_at = measured(run_dir)
    assert 3 <= len(stopped_at) < budget
    retried = events(run_dir, "job_retried")
    assert retried[0]["attempts"] >= 2 and retried[0]["what"].startswith("eval node")

    done = subprocess.run([sys.executable, "-m", "hgm", "resume", str(run_dir), "--json"], cwd=REPO, env=run_env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    after = measured(run_dir)
    assert len(after) == budget == summary["evaluations"] and summary["status"] == "finished"
    assert len({(n, t) for _, n, t in after}) == budget  # nothing measured twice
    assert set(stopped_at) <= set(after)
    sessions = events(run_dir, "session_start")
    assert [s["executor"] for s in sessions] == ["ray", "ray"]
    conn = sqlite3.connect(f"file:{run_dir / 'hgm.db'}?mode=ro", uri=True)
    try:
        statuses = {r[0] for r in conn.execute("SELECT status FROM evaluations")}
    finally:
        conn.close()
    assert "error_infra" not in statuses  # the lost attempt was run again, not counted as a failure
