"""The CLI on broken input and broken runs: one line, the right exit code, nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from archive import EvalRecord, Run
from hgm.cli import build_app
from tests.archive.helpers import make_agent
from tests.archive.test_faults import crashed_run, overwrite_config_byte

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def app() -> typer.Typer:
    return build_app()


def one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--seed", "-1"], "seed"),
        (["--tasks", ",,,"], "at least one task id"),
        (["--tasks", " , "], "at least one task id"),
        (["--budget-evals", "0"], "budget.evals"),
    ],
)
def test_bad_run_options_fail_before_anything_is_written(app, tmp_path: Path, args: list[str], fragment: str) -> None:
    target = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--run-dir", str(target), "--model", "scripted:x.json", *args])
    assert fragment in one_line_error(result)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_run_dir_that_is_not_a_run_does_not_suggest_resuming_it(app, tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    line = one_line_error(CliRunner().invoke(app, ["run", "--run-dir", str(tmp_path / "stuff")]))
    assert "not empty" in line and "resume" not in line
    Run.create(tmp_path / "old", {"k": 1}, make_agent(tmp_path / "seed")).close()
    line = one_line_error(CliRunner().invoke(app, ["run", "--run-dir", str(tmp_path / "old")]))
    assert f"hgm resume {tmp_path / 'old'}" in line


def test_hgm_runs_lists_the_other_runs_past_a_corrupt_one(app, tmp_path: Path) -> None:
    seed = make_agent(tmp_path / "seed")
    for name in ("good", "bad"):
        Run.create(tmp_path / "runs" / name, {"budget": {"evals": 6}}, seed).close()
    overwrite_config_byte(tmp_path / "runs" / "bad", b'"evals": 6', b'"evals"; 6')
    result = CliRunner().invoke(app, ["runs", str(tmp_path / "runs"), "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    assert rows["good"]["status"] == "stopped" and rows["bad"]["status"] == "unreadable"
    assert "run config" in rows["bad"]["error"]
    bad = str(tmp_path / "runs" / "bad")
    for command in (["show", bad], ["best", bad], ["resume", bad], ["export", bad, "--node", "0", "--to", str(tmp_path / "x")],
                    ["eval", "--agent", f"{bad}:0", "--suite", "mini", "--model", "scripted:x.json"]):
        assert "run config" in one_line_error(CliRunner().invoke(app, command))


def test_a_lost_wal_is_reported_by_show_and_refused_by_resume(app, tmp_path: Path) -> None:
    path = crashed_run(tmp_path)
    (path / "hgm.db-wal").unlink()
    (path / "hgm.db-shm").unlink(missing_ok=True)
    for command in (["show", str(path)], ["resume", str(path)]):
        line = one_line_error(CliRunner().invoke(app, command))
        assert "hgm.db-wal" in line and "--accept-loss" in line
    with Run.open(path, accept_loss=True) as run:
        assert len(run.tree()) == 1  # nothing was pruned by the refused resume


def test_resume_budget_options_are_checked(app, tmp_path: Path) -> None:
    with Run.create(tmp_path / "run", {"model": "scripted:x.json", "budget": {"evals": 2}}, make_agent(tmp_path / "s")) as run:
        run.record_eval(EvalRecord(0, "a", "resolved"))
        run.record_eval(EvalRecord(0, "b", "unresolved"))
    for args, fragment in ((["--budget-evals", "0"], "must be positive"), (["--budget-evals", "2"], "leaves nothing to do"),
                           (["--budget-usd", "-1"], "must be positive"), (["--workers", "0"], "--workers")):
        line = one_line_error(CliRunner().invoke(app, ["resume", str(tmp_path / "run"), *args]))
        assert fragment in line
    with Run.open(tmp_path / "run") as run:
        assert run.events("budget_extended") == []


def test_a_nearly_full_disk_refuses_a_new_run_and_leaves_nothing(tmp_path: Path, tiny_fs) -> None:
    disk = tiny_fs(2048)
    done = subprocess.run([sys.executable, "-m", "hgm", "run", "--run-dir", str(disk / "run"),
                           "--model", "scripted:x.json", "--sandbox", "local"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and f"the disk holding {disk / 'run'} is full" in done.stderr
    assert "free at least 50.0 MB" in done.stderr
    assert list(disk.iterdir()) == []
