"""`hgm simulate --jobs 2`: progress outside a terminal, and Ctrl-C that stops at once and keeps what finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_ctrl_c_stops_the_pool_at_once_and_reports_the_finished_runs() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hgm", "simulate", "--jobs", "2", "--seeds", "400", "--budget-evals", "150"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        first = proc.stderr.readline()  # not a terminal: progress comes as plain lines
        assert first.startswith("simulated ") and "/1600 runs" in first, first
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert took < 10  # not minutes of chunks finishing first
    assert "interrupted: " in err and "of 1600 runs finished" in err
    done = int(err.split("interrupted: ")[1].split(" of ")[0])
    assert done >= 160  # the runs reported by the progress line were kept
    for policy in ("hgm", "dgm", "greedy", "uniform"):  # seed by seed: every policy has results
        assert f"│ {policy}" in out


def test_an_interrupt_keeps_every_finished_run_in_seed_order() -> None:
    import pytest

    from hgm.sim.landscape import load_landscape
    from hgm.sim.report import SimulationInterrupted, run_many

    done = []

    def on_done() -> None:
        done.append(1)
        if len(done) == 7:
            raise KeyboardInterrupt  # as Ctrl-C would, between two finished runs

    with pytest.raises(SimulationInterrupted) as err:
        run_many(load_landscape("default"), ["hgm", "dgm"], budget=30, seeds=list(range(10)), jobs=2, on_done=on_done)
    assert err.value.done == 7 and err.value.total == 20
    results = err.value.results
    assert sum(len(v) for v in results.values()) == 7 and results["hgm"] and results["dgm"]
    for runs in results.values():
        seeds = [r.seed for r in runs]
        assert seeds == sorted(seeds)


def test_json_output_says_the_batch_was_interrupted(monkeypatch) -> None:
    from typer.testing import CliRunner

    from hgm.cli import build_app
    from hgm.sim import report
    from hgm.sim.landscape import load_landscape

    finished = report.run_many(load_landscape("default"), ["hgm"], budget=30, seeds=[0, 1, 2])

    def interrupted(*args, **kwargs):
        raise report.SimulationInterrupted(finished, 3, 40)

    monkeypatch.setattr(report, "run_many", interrupted)
    result = CliRunner().invoke(build_app(), ["simulate", "-p", "hgm", "--seeds", "40", "--json"])
    assert result.exit_code == 130
    data = json.loads(result.stdout)
    assert data["interrupted"] == {"done": 3, "total": 40}
    assert len(data["policies"]["hgm"]["chosen"]["values"]) == 3
