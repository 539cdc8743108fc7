"""Run.create / Run.open and the write API: one row per call, consistent with git."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from archive import (
    ArchiveError,
    DuplicateEvaluation,
    EvalRecord,
    ExpansionRecord,
    ReadOnlyRun,
    Run,
    RunExists,
    UnknownNode,
)
from archive.agents_git import AgentStore
from tests.archive.helpers import make_agent


def test_create_freezes_config_and_commits_seed_as_node_0(run: Run, tmp_path: Path) -> None:
    assert run.config == {"model": "scripted", "budget": 10}
    assert run.status == "stopped"
    info = run.info()
    assert (info.nodes, info.evaluations, info.hgm_version) == (1, 0, "test")
    seed = run.node(0)
    assert seed["parent_id"] is None and seed["operator"] == "seed"
    assert run.agents.commit_of(0) == seed["commit_sha"]
    assert [e["kind"] for e in run.events()] == ["created"]
    # nothing of the hidden build directory is left next to the run
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["r1"]


def test_create_refuses_non_empty_dir_and_missing_seed(tmp_path: Path, seed_dir: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "x").write_text("keep me")
    with pytest.raises(RunExists):
        Run.create(target, {}, seed_dir)
    assert (target / "x").read_text() == "keep me"
    with pytest.raises(ArchiveError, match="seed agent directory"):
        Run.create(tmp_path / "new", {}, tmp_path / "no-such-seed")
    assert not (tmp_path / "new").exists()
    with pytest.raises(ArchiveError, match="JSON"):
        Run.create(tmp_path / "new", {"bad": object()}, seed_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed", "taken"]


def test_create_into_existing_empty_dir(tmp_path: Path, seed_dir: Path) -> None:
    (tmp_path / "empty").mkdir()
    with Run.create(tmp_path / "empty", {}, seed_dir) as run:
        assert run.info().nodes == 1


def test_add_node_commits_child_on_parent_and_records_expansion(run: Run, tmp_path: Path) -> None:
    child_dir = make_agent(tmp_path / "child", "print('child')\n")
    expansion = ExpansionRecord(parent_id=0, status="ok", reason="", cost_usd=0.5, tokens=100, lesson="L")
    child = run.add_node(0, child_dir, "improve", lesson="L", diagnosis="D", expansion=expansion)
    assert child == 1
    row = run.node(child)
    assert (row["parent_id"], row["operator"], row["lesson"], row["diagnosis"]) == (0, "improve", "L", "D")
    parent_of_child = run.agents.repo.commit(row["commit_sha"]).parents
    assert [c.hexsha for c in parent_of_child] == [run.node(0)["commit_sha"]]
    [exp] = run.expansions()
    assert (exp["parent_id"], exp["child_id"], exp["status"], exp["tokens"]) == (0, 1, "ok", 100)
    grandchild = run.add_node(child, child_dir, "improve")
    assert grandchild == 2
    assert "print('child')" in run.diff(0, child)


def test_add_node_unknown_parent_leaves_no_branch(run: Run, tmp_path: Path) -> None:
    with pytest.raises(UnknownNode):
        run.add_node(41, make_agent(tmp_path / "c"), "improve")
    assert run.agents.node_ids() == [0]


def test_record_eval_maps_status_to_utility(run: Run) -> None:
    expected = {
        "resolved": 1, "unresolved": 0, "empty_patch": 0, "patch_failed": 0,
        "timeout": 0, "error_infra": None, "abandoned": None,
    }
    for i, status in enumerate(expected):
        run.record_eval(EvalRecord(0, f"t{i}", status, started=1.0, finished=2.0, agent_s=0.5, tokens=7))
    rows = run.evaluations(0)
    assert {r["status"]: r["utility"] for r in rows} == expected
    assert run.evaluated_pairs() == {(0, f"t{i}") for i, s in enumerate(expected) if expected[s] is not None}
    assert run.tree()[0].evals == [1, 0, 0, 0, 0]


def test_unknown_status_rejected() -> None:
    with pytest.raises(ValueError, match="unknown evaluation status"):
        EvalRecord(0, "t", "passed")
    with pytest.raises(ValueError, match="unknown expansion status"):
        ExpansionRecord(0, "weird")


def test_one_measurement_per_pair_but_infra_errors_repeat(run: Run) -> None:
    run.record_eval(EvalRecord(0, "t", "error_infra", detail="docker died"))
    run.record_eval(EvalRecord(0, "t", "error_infra"))
    run.record_eval(EvalRecord(0, "t", "unresolved"))
    with pytest.raises(DuplicateEvaluation):
        run.record_eval(EvalRecord(0, "t", "resolved"))
    with pytest.raises(UnknownNode):
        run.record_eval(EvalRecord(9, "t", "resolved"))
    assert len(run.evaluations()) == 3


def test_batch_is_all_or_nothing(run: Run) -> None:
    assert run.record_evals([EvalRecord(0, f"t{i}", "resolved") for i in range(100)]) == 100
    with pytest.raises(DuplicateEvaluation):
        run.record_evals([EvalRecord(0, "new", "resolved"), EvalRecord(0, "t5", "resolved")])
    assert len(run.evaluations()) == 100
    assert (0, "new") not in run.evaluated_pairs()


def test_expansion_llm_call_event_status(run: Run) -> None:
    with pytest.raises(ValueError, match="child_id"):
        run.record_expansion(ExpansionRecord(parent_id=0, status="ok"))
    with pytest.raises(ValueError, match="child_id"):
        run.record_expansion(ExpansionRecord(parent_id=0, status="failed", child_id=0))
    run.record_expansion(ExpansionRecord(parent_id=0, status="failed", reason="own tests failed"))
    run.record_llm_call(model="local/smollm2", purpose="solve", node_id=0, task_id="t", prompt_tokens=10,
                        completion_tokens=5, cost_usd=0.0, latency_s=0.2)
    run.log_event("budget", {"spent": 1.5})
    run.set_status("running")
    assert run.status == "running"
    with pytest.raises(ValueError):
        run.set_status("exploded")
    assert [f.reason for f in run.tree().failed_expansions] == ["own tests failed"]
    kinds = [e["kind"] for e in run.events()]
    assert kinds == ["created", "budget", "status"]
    assert run.events("budget")[0]["payload"] == {"spent": 1.5}
    calls = run._read_all("SELECT * FROM llm_calls")
    assert (calls[0]["model"], calls[0]["purpose"], calls[0]["prompt_tokens"]) == ("local/smollm2", "solve", 10)


def test_read_only_run_refuses_writes(run: Run) -> None:
    path = run.path
    run.close()
    with Run.open(path) as reader:
        assert not reader.writable
        with pytest.raises(ReadOnlyRun):
            reader.record_eval(EvalRecord(0, "t", "resolved"))
        with pytest.raises(ReadOnlyRun):
            reader.log_event("x")


def test_reader_sees_writer_commits_while_writer_is_open(run: Run) -> None:
    with Run.open(run.path) as reader:
        assert reader.info().evaluations == 0
        run.record_eval(EvalRecord(0, "t", "resolved"))
        assert reader.info().evaluations == 1


def test_orphan_branch_from_crash_in_add_node_is_pruned(run: Run, tmp_path: Path) -> None:
    path = run.path
    # simulate a crash after the git commit of node 1 but before its DB row
    run.agents.add_version(1, make_agent(tmp_path / "orphan"), run.node(0)["commit_sha"], "node 1")
    run.close()
    with Run.open(path) as reader:  # readers change nothing
        assert reader.agents.node_ids() == [0, 1]
    with Run.open(path, writable=True) as writer:
        assert writer.agents.node_ids() == [0]
        assert writer.add_node(0, tmp_path / "orphan", "improve") == 1


def test_export_formats(run: Run, tmp_path: Path) -> None:
    child = run.add_node(0, make_agent(tmp_path / "child", "print('better')\n"), "improve")
    out = run.export(child, tmp_path / "out", "dir")
    assert (out / "agent" / "main.py").read_text() == "print('better')\n"
    assert (out / "run.sh").stat().st_mode & 0o111
    assert not (out / "agent" / "__pycache__").exists()
    patch = run.export(child, tmp_path / "p.diff", "patch").read_text()
    assert "-print('seed')" in patch and "+print('better')" in patch
    bundle = run.export(child, tmp_path / "b.bundle", "bundle")
    assert bundle.read_bytes().startswith(b"# v2 git bundle")
    with pytest.raises(FileExistsError):
        run.export(child, tmp_path / "out", "dir")
    with pytest.raises(ValueError):
        run.export(child, tmp_path / "x", "zip")
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_every_write_is_committed_immediately(run: Run) -> None:
    run.record_eval(EvalRecord(0, "t", "resolved"))
    other = sqlite3.connect(run.path / "hgm.db")
    assert other.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 1
    other.close()


def test_store_can_be_reopened_directly(run: Run) -> None:
    store = AgentStore(run.path / "agents.git")
    assert store.node_ids() == [0]
    store.close()


def test_import_nodes_bulk_without_git(run: Run) -> None:
    ids = run.import_nodes([(0, "sim"), (1, "sim"), (1, "sim")])
    assert ids == [1, 2, 3]
    tree = run.tree()
    assert tree[1].children == [2, 3]
    assert tree[3].commit == run.node(0)["commit_sha"]  # reuses the seed's code
    with pytest.raises(UnknownNode):
        run.import_nodes([(0, "sim"), (99, "sim")])
    assert len(run.tree()) == 4  # all or nothing
    assert run.agents.node_ids() == [0]


def test_tree_snapshots_are_consistent_while_another_process_writes(run: Run, tmp_path: Path) -> None:
    """Nodes and evaluations are read in one transaction: never an evaluation of an unseen node."""
    import subprocess
    import sys

    path = run.path
    run.close()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "started"
        with Run.open(path) as reader:
            sizes: list[int] = []
            deadline = time.monotonic() + 60
            while (not sizes or sizes[-1] < 300) and time.monotonic() < deadline:
                tree = reader.tree()  # would raise KeyError on a torn read
                sizes.append(len(tree))
                # every node but the newest has both of its evaluations (recorded right after it)
                assert 2 * (len(tree) - 2) <= tree.n_evals <= 2 * (len(tree) - 1)
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()
    assert sizes[-1] >= 300, "the writer did not get going"
    assert len(set(sizes)) >= 5  # many reads landed while the writer was writing


WRITER = """
import sys
from archive import EvalRecord, Run
run = Run.open(sys.argv[1], writable=True)
print("started", flush=True)
while True:
    [node] = run.import_nodes([(0, "sim")])
    run.record_eval(EvalRecord(node, "a", "resolved"))
    run.record_eval(EvalRecord(node, "b", "unresolved"))
"""


def test_older_schema_is_migrated_by_a_writer(run: Run, monkeypatch) -> None:
    from archive import schema

    path = run.path
    run.close()
    current = schema.SCHEMA_VERSION
    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setattr(schema, "MIGRATIONS", {**schema.MIGRATIONS,
                                               current: "ALTER TABLE nodes ADD COLUMN note TEXT NOT NULL DEFAULT '';"})
    with Run.open(path) as reader:  # readers do not migrate
        assert "note" not in reader.node(0)
    with Run.open(path, writable=True) as writer:
        assert writer.node(0)["note"] == ""
    conn = sqlite3.connect(path / "hgm.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == current + 1
    conn.close()
