"""The disk fills up mid-run, for real (a tiny tmpfs holds the run directory).

With the free-space check on (`min_free_mb`), the run stops before the next job; with it
off, a write (an artifact, a patch, the archive) fails with ENOSPC. Either way: one line
naming the path and the space needed, exit 1, status `stopped`, an intact database, nothing
broken scored, and `hgm resume` finishes the run once space is freed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from run_db import measured_pairs, rows
from scripted import write_script

from tests.archive.helpers import fill_disk

REPO = Path(__file__).resolve().parents[2]
TASKS = "hgm-mini__iniconf-1,hgm-mini__iniconf-2,hgm-mini__iniconf-3"


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("min_free_mb", [1, 0], ids=["free-space-check", "enospc-on-write"])
def test_a_disk_that_fills_up_stops_the_run_cleanly_and_resume_finishes_it(tmp_path: Path, tiny_fs,
                                                                           min_free_mb: int) -> None:
    disk = tiny_fs(24 * 1024)
    run_dir = disk / "run"
    script = write_script(tmp_path / "script.json", solve_sleep=1.0)
    config = tmp_path / "run.toml"
    config.write_text(f"min_free_mb = {min_free_mb}\n")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hgm", "run", "--run-dir", str(run_dir), "--config", str(config), "--model",
         f"scripted:{script}", "--sandbox", "local", "--tasks", TASKS, "--budget-evals", "4", "--workers", "1",
         "--json"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 600
    while not (run_dir / "hgm.db").exists() or len(measured_pairs(run_dir)) < 2:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    before = measured_pairs(run_dir)
    filler = fill_disk(disk)
    full_at = time.time()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-3000:]
    assert "Traceback" not in err
    [line] = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert "is full" in line and "free at least" in line and f"hgm resume {run_dir}" in line
    assert str(disk) in line
    summary = json.loads(out)
    assert summary["stop_reason"] == "disk_full" and summary["status"] == "stopped"
    assert rows(run_dir, "PRAGMA integrity_check")[0][0] == "ok"
    assert rows(run_dir, "SELECT status FROM run")[0][0] == "stopped"  # the reserve left room for it
    after_stop = measured_pairs(run_dir)
    assert before <= after_stop
    # nothing the full disk broke was scored: no measured evaluation finished after the disk filled
    late = rows(run_dir, f"SELECT node_id, task_id, status FROM evaluations WHERE finished > {full_at}")
    assert all(status in ("abandoned", "error_infra") for _, _, status in late), late
    assert rows(run_dir, f"SELECT COUNT(*) FROM expansions WHERE status = 'failed' AND finished > {full_at}")[0][0] == 0

    filler.unlink()
    done = subprocess.run([sys.executable, "-m", "hgm", "resume", str(run_dir), "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    final = rows(run_dir, "SELECT node_id, task_id FROM evaluations WHERE utility IS NOT NULL")
    assert len(final) == 4 and len(set(final)) == 4 and after_stop <= set(final)
    assert json.loads(done.stdout)["status"] == "finished"
