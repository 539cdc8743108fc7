"""The Docker engine goes away mid-run, for real, on a PRIVATE dockerd (never the shared one).

One run on its own engine meets three faults in turn:
1. the engine is stopped while an agent works, and started again: the broken work is an
   infrastructure error (never scored), nothing new starts meanwhile, the run goes on;
2. a sandbox container is killed from outside (`docker kill`): that evaluation is an
   infrastructure error, not a failed attempt of the agent;
3. the engine stops for good: the run stops after its bounded wait with one clear
   message, and `hgm resume` completes it once the engine is back.
After each: nothing finished was lost, no measured evaluation overlaps a fault (one worker:
the evaluation in flight at a fault is the one it broke), the budget is spent exactly and no
container of the run is left.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from private_docker import PrivateDocker
from run_db import measured_pairs, rows
from scripted import write_script

REPO = Path(__file__).resolve().parents[2]
TASKS = "hgm-mini__iniconf-2,hgm-mini__iniconf-3"  # unsolved by the script: each solve sleeps in its sandbox


def wait_for_solving(run_dir: Path, proc: subprocess.Popen, engine: PrivateDocker, timeout: float = 600) -> str:
    """Wait until an agent sleeps in a solve sandbox; return that container's name."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        names = [n for n in engine.containers(f"hgm.run_dir={run_dir.resolve()}") if "-solve-" in n]
        if names and (run_dir / "hgm.db").exists() and rows(run_dir, "SELECT COUNT(*) FROM llm_calls WHERE purpose = 'solve'"
                                                            " AND time > (SELECT MAX(time) FROM events WHERE kind = 'session_start')")[0][0]:
            time.sleep(1.0)  # into the agent's `sleep`
            return names[0]
        time.sleep(0.3)
    raise AssertionError("no evaluation started in time")


def check(run_dir: Path, budget: int, faults: list[float], before: set[tuple[int, str]]) -> None:
    measured = rows(run_dir, "SELECT node_id, task_id, started, finished FROM evaluations WHERE utility IS NOT NULL")
    assert len(measured) == budget and len({(n, t) for n, t, _, _ in measured}) == budget
    assert before <= {(n, t) for n, t, _, _ in measured}  # nothing finished was lost
    for _, _, started, finished in measured:  # nothing broken was scored
        assert not any(started <= at <= finished for at in faults), (started, finished, faults)
    failed = rows(run_dir, "SELECT started, finished FROM expansions WHERE status = 'failed'")
    for started, finished in failed:
        assert not any(started <= at <= finished for at in faults)


@pytest.mark.docker
@pytest.mark.e2e
@pytest.mark.slow
def test_engine_restart_container_kill_and_engine_gone(tmp_path: Path, require_or_skip) -> None:
    problem = PrivateDocker.problem()
    if problem:
        require_or_skip("HGM_REQUIRE_ROOT", problem)
    engine = PrivateDocker(Path(tempfile.mkdtemp(prefix="hgmd-", dir="/tmp")))  # short: unix socket paths
    try:
        engine.start()
        engine.load_base_image()
        script = write_script(tmp_path / "script.json", solve_sleep=5)
        config = tmp_path / "run.toml"
        config.write_text("infra_wait_s = 10\nmin_free_mb = 1\n")
        run_dir = tmp_path / "run"
        env = {**engine.env, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        label = f"hgm.run_dir={run_dir.resolve()}"

        def hgm(*args: str) -> subprocess.Popen:
            return subprocess.Popen([sys.executable, "-m", "hgm", *args, "--json"], cwd=REPO, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        # 1. the engine restarts mid-evaluation
        proc = hgm("run", "--run-dir", str(run_dir), "--config", str(config), "--model", f"scripted:{script}",
                   "--sandbox", "docker", "--tasks", TASKS, "--budget-evals", "2", "--workers", "1")
        wait_for_solving(run_dir, proc, engine)
        before = measured_pairs(run_dir)
        down = time.time()
        engine.stop()
        time.sleep(4)
        engine.start()
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]
        summary = json.loads(out)
        assert summary["status"] == "finished" and summary["stop_reason"] == "budget_evals"
        infra = rows(run_dir, "SELECT started, finished, detail FROM evaluations WHERE status = 'error_infra'")
        assert any(s <= down <= f for s, f, _ in infra), infra  # the broken evaluation, recorded unscored
        check(run_dir, 2, [down], before)
        assert engine.containers(label) == []

        # 2. a sandbox container is killed from outside
        proc = hgm("resume", str(run_dir), "--budget-evals", "3")
        name = wait_for_solving(run_dir, proc, engine)
        before = measured_pairs(run_dir)
        killed = time.time()
        assert engine.docker("kill", name, timeout=60).returncode == 0
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]
        infra = rows(run_dir, "SELECT started, finished, detail FROM evaluations WHERE status = 'error_infra'")
        assert any(s <= killed <= f and ("stopped from outside" in d or "removed from outside" in d)
                   for s, f, d in infra), infra
        check(run_dir, 3, [down, killed], before)
        assert engine.containers(label) == []

        # 3. the engine goes for good: a bounded wait, one clear message, then resume
        proc = hgm("resume", str(run_dir), "--budget-evals", "4")
        wait_for_solving(run_dir, proc, engine)
        before = measured_pairs(run_dir)
        gone = time.time()
        engine.stop()
        out, err = proc.communicate(timeout=300)
        waited = time.time() - gone
        assert proc.returncode == 1, err[-3000:]
        assert "does not answer" in err and "waited 10 s" in err and f"hgm resume {run_dir}" in err
        assert "Traceback" not in err and 10 <= waited < 100
        assert rows(run_dir, "SELECT status FROM run")[0][0] == "stopped"
        engine.start()
        done = subprocess.run([sys.executable, "-m", "hgm", "resume", str(run_dir), "--json"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        check(run_dir, 4, [down, killed, gone], before)
        assert engine.containers(label) == []
    finally:
        engine.close()
