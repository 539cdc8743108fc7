"""`hgm runs`, `hgm show`, `hgm export` on real archives, and their one-line errors (exit 2)."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from archive import SCHEMA_VERSION, EvalRecord, ExpansionRecord, Run
from hgm.cli import build_app
from hgm.cli.runs_cmd import open_run
from tests.archive.helpers import make_agent, snapshot, without_shm

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def app() -> typer.Typer:
    return build_app()


def invoke(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """Two runs: `alpha` with a small tree and evaluations, `beta` with only its seed."""
    seed = make_agent(tmp_path / "seed")
    config = {"suite": "mini", "policy": {"final_rule": "best-belief", "final_quantile": 0.05}}
    with Run.create(tmp_path / "runs" / "alpha", config, seed) as run:
        child_dir = make_agent(tmp_path / "child", "print('child')\n")
        a = run.add_node(0, child_dir, "improve", expansion=ExpansionRecord(parent_id=0, status="ok"))
        b = run.add_node(a, child_dir, "improve")
        run.record_expansion(ExpansionRecord(parent_id=a, status="failed", reason="own tests failed"))
        for i in range(4):
            run.record_eval(EvalRecord(0, f"t{i}", "resolved" if i == 0 else "unresolved"))
        for i in range(10):
            run.record_eval(EvalRecord(a, f"t{i}", "resolved" if i < 8 else "unresolved"))
        run.record_eval(EvalRecord(b, "t0", "resolved"))
        run.record_eval(EvalRecord(b, "t1", "error_infra"))
        run.set_status("finished")
    Run.create(tmp_path / "runs" / "beta", {}, seed).close()
    return tmp_path / "runs"


def test_runs_table_and_json(app, runs_dir: Path) -> None:
    result = invoke(app, "runs", str(runs_dir), "--json")
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"alpha", "beta"}
    alpha = rows["alpha"]
    assert (alpha["status"], alpha["nodes"], alpha["evaluations"]) == ("finished", 3, 15)
    assert alpha["best"] == {"node": 1, "mean": 0.8, "evals": 10, "rule": "best-belief", "chosen_by": "rule"}
    assert rows["beta"]["best"] is None and rows["beta"]["evaluations"] == 0
    table = invoke(app, "runs", str(runs_dir))
    assert table.exit_code == 0
    assert "alpha" in table.stdout and "0.80 (node 1" in table.stdout


def test_runs_lists_broken_run_as_unreadable(app, runs_dir: Path) -> None:
    shutil.rmtree(runs_dir / "beta" / "agents.git")
    rows = {r["id"]: r for r in json.loads(invoke(app, "runs", str(runs_dir), "--json").stdout)}
    assert rows["beta"]["status"] == "unreadable" and "agents.git" in rows["beta"]["error"]
    assert rows["alpha"]["status"] == "finished"


def test_runs_on_missing_folder_exits_2(app, tmp_path: Path) -> None:
    result = invoke(app, "runs", str(tmp_path / "nope"))
    assert result.exit_code == 2 and "not a folder" in result.stderr


def test_runs_default_folder(app, runs_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(runs_dir.parent)
    assert {r["id"] for r in json.loads(invoke(app, "runs", "--json").stdout)} == {"alpha", "beta"}
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)  # no ./runs yet: an empty listing, not an error
    result = invoke(app, "runs", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert "no runs" in invoke(app, "runs").stdout


def test_show_json_tree(app, runs_dir: Path) -> None:
    result = invoke(app, "show", str(runs_dir / "alpha"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run"]["nodes"] == 3 and data["best"]["node"] == 1
    nodes = {n["id"]: n for n in data["nodes"]}
    assert [(n["id"], n["depth"]) for n in data["nodes"]] == [(0, 0), (1, 1), (2, 2)]
    assert (nodes[1]["evals"], nodes[1]["resolved"], nodes[1]["mean"]) == (10, 8, 0.8)
    lo, hi = nodes[1]["ci95"]
    assert lo < 0.8 < hi
    assert nodes[2]["evals"] == 1  # infra error not counted
    assert nodes[0]["clade_evals"] == 15
    assert data["failed_expansions"] == [{"id": 2, "parent": 1, "status": "failed", "reason": "own tests failed"}]


def test_show_table_by_name_under_runs(app, runs_dir: Path, monkeypatch) -> None:
    monkeypatch.chdir(runs_dir.parent)
    result = invoke(app, "show", "alpha")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "1 *" in out and "best-belief rule" in out  # the shipped node is marked
    assert "0.80 [" in out and "own tests failed" in out


def test_export_node_and_best(app, runs_dir: Path, tmp_path: Path) -> None:
    run = str(runs_dir / "alpha")
    result = invoke(app, "export", run, "--node", "2", "--to", str(tmp_path / "agent2"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "agent2" / "agent" / "main.py").read_text() == "print('child')\n"
    result = invoke(app, "export", run, "--best", "--to", str(tmp_path / "best.patch"), "--format", "patch", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"node": 1, "format": "patch", "path": str(tmp_path / "best.patch")}
    assert "+print('child')" in (tmp_path / "best.patch").read_text()
    result = invoke(app, "export", run, "--node", "1", "--to", str(tmp_path / "n1.bundle"), "--format", "bundle")
    assert result.exit_code == 0
    assert (tmp_path / "n1.bundle").read_bytes().startswith(b"# v2 git bundle")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--node", "9"], "no node 9"),
        (["--node", "1", "--best"], "exactly one"),
        ([], "exactly one"),
        (["--node", "1", "--format", "zip"], "unknown --format"),
    ],
)
def test_export_bad_input_exits_2_and_writes_nothing(app, runs_dir: Path, tmp_path: Path, args, words) -> None:
    assert invoke(app, "show", str(runs_dir / "alpha")).exit_code == 0  # SQLite's -wal/-shm now exist
    before = without_shm(snapshot(tmp_path))
    result = invoke(app, "export", str(runs_dir / "alpha"), "--to", str(tmp_path / "out"), *args)
    assert result.exit_code == 2
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert without_shm(snapshot(tmp_path)) == before


def test_export_best_before_any_evaluation(app, runs_dir: Path, tmp_path: Path) -> None:
    result = invoke(app, "export", str(runs_dir / "beta"), "--best", "--to", str(tmp_path / "o"))
    assert result.exit_code == 2 and "--node" in result.stderr
    assert not (tmp_path / "o").exists()


def test_export_refuses_existing_target(app, runs_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("mine")
    result = invoke(app, "export", str(runs_dir / "alpha"), "--node", "0", "--to", str(tmp_path / "taken"))
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert (tmp_path / "taken").read_text() == "mine"


def _newer(run: Path) -> None:
    conn = sqlite3.connect(run / "hgm.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()


def _garbage(run: Path) -> None:
    (run / "hgm.db").write_bytes(b"\x00" * 4096)


def _no_git(run: Path) -> None:
    shutil.rmtree(run / "agents.git")


def _no_db(run: Path) -> None:
    (run / "hgm.db").unlink()


@pytest.mark.parametrize(
    ("breaker", "words"),
    [(_newer, "newer"), (_garbage, "not an SQLite database"), (_no_git, "agents.git"), (_no_db, "not an hgm run")],
)
@pytest.mark.parametrize("command", [["show"], ["show", "--json"], ["export", "--node", "0", "--to", "OUT"]])
def test_archive_errors_exit_2_with_one_line_and_write_nothing(
    app, runs_dir: Path, tmp_path: Path, breaker, words, command
) -> None:
    run = runs_dir / "beta"
    breaker(run)
    before = snapshot(tmp_path)
    args = [command[0], str(run), *[str(tmp_path / "out") if a == "OUT" else a for a in command[1:]]]
    result = invoke(app, *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]
    assert result.stdout == ""
    assert snapshot(tmp_path) == before


HOLDER = textwrap.dedent(
    """
    import sys, time
    from archive import Run
    run = Run.open(sys.argv[1], writable=True)
    print("locked", flush=True)
    time.sleep(120)
    """
)


def test_locked_run_exits_2_for_writers(runs_dir: Path) -> None:
    run = runs_dir / "beta"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(typer.Exit) as info:
            with open_run(str(run), writable=True):
                pass
        assert info.value.exit_code == 2
        with open_run(str(run)) as reader:  # reading a locked run is fine
            assert reader.info().nodes == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()


def test_cli_subprocess_error_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hgm", "show", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path} is not an hgm run (no hgm.db); pass a run directory (see `hgm runs`)"


def test_damaged_git_objects_give_one_line_error(app, runs_dir: Path, tmp_path: Path) -> None:
    objects = runs_dir / "alpha" / "agents.git" / "objects"
    for sub in objects.iterdir():
        if len(sub.name) == 2:  # loose objects; refs and HEAD stay, so the store looks fine
            shutil.rmtree(sub)
    result = invoke(app, "export", str(runs_dir / "alpha"), "--node", "1", "--to", str(tmp_path / "out"))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "git could not" in lines[0] and "agents.git" in lines[0]
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_show_big_tree_keeps_trusted_nodes_and_ancestors(app, runs_dir: Path) -> None:
    result = invoke(app, "show", str(runs_dir / "alpha"), "--max-rows", "1")
    assert result.exit_code == 0, result.output
    assert "showing 2 of 3 nodes" in result.stdout
    tree_table = result.stdout.split("without a child")[0]
    node_cells = [line.split("│")[1].strip() for line in tree_table.splitlines() if line.startswith("│")]
    assert node_cells == ["0", "└ 1 *"]  # node 2 (less trusted) hidden, node 1's ancestor kept


def test_best_follows_the_runs_final_rule(app, tmp_path: Path) -> None:
    """Without a setting the lineage rule ships: a 1/1 child of an 8/10 parent beats its parent."""
    seed = make_agent(tmp_path / "seed")
    with Run.create(tmp_path / "gamma", {"suite": "mini"}, seed) as run:
        a = run.add_node(0, make_agent(tmp_path / "a", "print('a')\n"), "improve")
        b = run.add_node(a, make_agent(tmp_path / "b", "print('b')\n"), "improve")
        for i in range(4):
            run.record_eval(EvalRecord(0, f"t{i}", "resolved" if i == 0 else "unresolved"))
        for i in range(10):
            run.record_eval(EvalRecord(a, f"t{i}", "resolved" if i < 8 else "unresolved"))
        run.record_eval(EvalRecord(b, "t0", "resolved"))
    shown = json.loads(invoke(app, "show", str(tmp_path / "gamma"), "--json").stdout)
    assert shown["best"] == {"node": b, "mean": 1.0, "evals": 1, "rule": "lineage", "chosen_by": "rule"}
    result = invoke(app, "export", str(tmp_path / "gamma"), "--best", "--to", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["node"] == b


def test_show_links_a_recombined_node_to_its_second_parent(app, tmp_path: Path) -> None:
    with Run.create(tmp_path / "runs" / "rec", {}, make_agent(tmp_path / "seed")) as run:
        a = run.add_node(0, make_agent(tmp_path / "a", "A = 1\n"), "revise")
        b = run.add_node(0, make_agent(tmp_path / "b", "B = 1\n"), "refine")
        record = ExpansionRecord(parent_id=a, status="ok", operator="recombine", second_parent_id=b)
        child = run.add_node(a, make_agent(tmp_path / "c", "A = B = 1\n"), "recombine", expansion=record)
    data = json.loads(invoke(app, "show", str(tmp_path / "runs" / "rec"), "--json").stdout)
    nodes = {n["id"]: n for n in data["nodes"]}
    assert (nodes[child]["parent"], nodes[child]["second_parent"], nodes[child]["depth"]) == (a, b, 2)
    assert nodes[a]["second_parent"] is None
    table = invoke(app, "show", str(tmp_path / "runs" / "rec")).stdout
    assert f"recombine (+ node {b})" in table and "second parent" in table
