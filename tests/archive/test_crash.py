"""kill -9 in the middle of writing thousands of evaluations: every committed row survives."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from archive import EvalRecord, Run
from archive.schema import EVAL_STATUSES
from tests.archive.helpers import make_agent

REPO = Path(__file__).resolve().parents[2]
KILL_AFTER = 3000  # committed evaluations before the kill

WRITER = textwrap.dedent(
    """
    import sys
    from archive import Run
    from tests.archive.test_crash import record_for
    run = Run.open(sys.argv[1], writable=True)
    batch = int(sys.argv[2])
    i = 0
    while True:
        if batch == 1:
            run.record_eval(record_for(i))
        else:
            run.record_evals([record_for(j) for j in range(i, i + batch)])
        i += batch
        print(i, flush=True)
    """
)


def record_for(i: int) -> EvalRecord:
    """The i-th evaluation, fully determined by i so a reader can check every field."""
    return EvalRecord(
        node_id=i % 3,
        task_id=f"task-{i}",
        status=EVAL_STATUSES[i % len(EVAL_STATUSES)],
        started=float(i),
        finished=i + 0.5,
        agent_s=i * 0.25,
        grade_s=i * 0.125,
        total_s=i * 0.375,
        tokens=i * 7,
        cost_usd=i / 1024,
        trajectory_path=f"traj/{i}.jsonl",
        log_path=f"logs/{i}.log",
        detail="x" * (i % 97),
    )


def _prepared_run(tmp_path: Path) -> Path:
    seed = make_agent(tmp_path / "seed")
    with Run.create(tmp_path / "run", {"k": 1}, seed) as run:
        run.add_node(0, seed, "improve")
        run.add_node(1, seed, "improve")
        return run.path


def _kill_mid_write(run_dir: Path, batch: int) -> int:
    """Start the writer, SIGKILL it after KILL_AFTER commits; return the last count it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(run_dir), str(batch)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    last = 0
    for line in proc.stdout:
        last = int(line)
        if last >= KILL_AFTER:
            time.sleep(random.uniform(0.0, 0.05))  # land the kill at an arbitrary point of the loop
            proc.send_signal(signal.SIGKILL)
            break
    rest = proc.stdout.read()  # lines printed before the kill landed
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    complete = [int(x) for x in rest.split("\n")[:-1] if x]  # a partial last line is ignored
    return complete[-1] if complete else last


def _check_rows(run_dir: Path, printed: int, batch: int) -> int:
    with Run.open(run_dir, writable=True) as run:  # opens, takes over the dead writer's lock
        assert run.events("lock_takeover")[0]["payload"]["dead_pid"] > 0
        rows = run.evaluations()
        fields = list(record_for(0).row())
        for row in rows:
            i = int(row["task_id"].removeprefix("task-"))
            assert row["id"] == i + 1  # no gaps: rows were committed in order
            expected = record_for(i)
            got = [row[k] for k in ("node_id", "task_id", "utility", "status", "started", "finished",
                                    "agent_s", "grade_s", "total_s", "tokens", "cost_usd",
                                    "trajectory_path", "log_path", "detail", "flags")]
            assert got == list(expected.row()), f"row {i} is not what was written"
            assert len(got) == len(fields)
        n = len(rows)
        assert printed <= n <= printed + batch  # at most the one transaction not yet reported
        assert n % batch == 0  # a batch is all or nothing
        tree = run.tree()
        assert tree.n_evals == sum(1 for r in rows if r["utility"] is not None)
    conn = sqlite3.connect(run_dir / "hgm.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()
    return n


def test_kill_9_while_recording_single_evaluations(tmp_path: Path) -> None:
    run_dir = _prepared_run(tmp_path)
    printed = _kill_mid_write(run_dir, batch=1)
    assert printed >= KILL_AFTER
    assert _check_rows(run_dir, printed, batch=1) >= KILL_AFTER


def test_kill_9_while_recording_batches(tmp_path: Path) -> None:
    run_dir = _prepared_run(tmp_path)
    printed = _kill_mid_write(run_dir, batch=500)
    assert _check_rows(run_dir, printed, batch=500) >= KILL_AFTER
