"""`hgm memory`, the memory of `hgm show --node`, the TUI's summary rows, and `hgm run --memory`'s checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archive import AdmissionRecord, ExpansionRecord, Run
from archive.memory import ExpansionMemory, MemoryBank, MemoryItem
from hgm.cli import build_app
from hgm.tui.data import RunData
from tests.archive.helpers import make_agent, snapshot


def invoke(*args: str):
    return CliRunner().invoke(build_app(), list(args))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run whose node 1 was made by an expansion shown one item of another run; a rejected
    attempt on node 1 and a comparison of node 1 with the seed produced items too."""
    with Run.create(tmp_path / "runs" / "alpha", {}, make_agent(tmp_path / "seed")) as run:
        shown = MemoryItem("other", "decided", "hurt", "Keep notes outside the package", "notes", "write notes.txt",
                           evidence={"decision": "rejected", "reason": "outside_package: notes.txt",
                                     "failed_checks": ["outside_package"]}, run="old", run_key="run-old")
        made = MemoryItem("made", "decided", "unproven", "Verify the patch", "runs the tests", "run tests first",
                          evidence={"decision": "accepted"}, run="alpha", run_key=run.key, parent_id=0,
                          model="scripted:x")
        node = run.add_node(0, make_agent(tmp_path / "child", "print(1)\n"), "self_improve",
                            expansion=ExpansionRecord(0, "ok"), admission=AdmissionRecord(0, "accepted"),
                            memory=ExpansionMemory((made,), (shown,)))
        failed = MemoryItem("failed", "decided", "hurt", "Rewrite the loop", "rewrote it", "replace the loop",
                            evidence={"decision": "rejected", "reason": "own_tests: 3 fail", "failed_checks": ["own_tests"]},
                            run="alpha", run_key=run.key, parent_id=node, written_by="fallback")
        run.record_expansion(ExpansionRecord(node, "failed", reason="rejected"), memory=ExpansionMemory((failed,)))
        run.add_memory([MemoryItem("cmp", "compared", "helped", "Verify the patch", "runs the tests", "run tests first",
                                   evidence={"shared_tasks": 4, "child_resolved": 3, "parent_resolved": 1, "wins": 2,
                                             "losses": 0}, run="alpha", run_key=run.key, node_id=node, parent_id=0,
                                   expansion_id=1)])
    return tmp_path / "runs" / "alpha"


def test_memory_lists_a_runs_items_with_filters(run_dir: Path) -> None:
    result = invoke("memory", str(run_dir), "--json")
    assert result.exit_code == 0, result.output
    items = {i["uid"]: i for i in json.loads(result.stdout)}
    assert set(items) == {"other", "made", "failed", "cmp"}
    assert items["cmp"]["outcome"].startswith("helped: on 4 shared tasks the child resolved 3, its parent 1")
    assert items["failed"]["written_by"] == "fallback" and items["made"]["model"] == "scripted:x"
    hurt = json.loads(invoke("memory", str(run_dir), "--polarity", "hurt", "--json").stdout)
    assert {i["uid"] for i in hurt} == {"other", "failed"}
    assert [i["uid"] for i in json.loads(invoke("memory", str(run_dir), "--text", "LOOP", "--json").stdout)] == ["failed"]
    table = invoke("memory", str(run_dir))
    assert table.exit_code == 0 and "Keep notes outside the package" in table.output and "helped" in table.output
    bad = invoke("memory", str(run_dir), "--polarity", "great")
    assert bad.exit_code == 2 and "unknown --polarity" in bad.output


def test_memory_reads_a_bank_and_refuses_what_is_not_one(run_dir: Path, tmp_path: Path) -> None:
    bank_path = tmp_path / "bank.db"
    with Run.open(run_dir) as run, MemoryBank.open(bank_path, create=True) as bank:
        bank.upsert(run.memory(run_key=run.key))
    items = json.loads(invoke("memory", str(bank_path), "--json").stdout)
    assert {i["uid"] for i in items} == {"made", "failed", "cmp"}
    junk = tmp_path / "junk.txt"
    junk.write_text("not a bank")
    result = invoke("memory", str(junk))
    assert result.exit_code == 2 and "not a memory bank" in result.output


def test_show_node_has_the_items_its_expansion_used_and_produced(run_dir: Path) -> None:
    result = invoke("show", str(run_dir), "--node", "1", "--json")
    assert result.exit_code == 0, result.output
    memory = json.loads(result.stdout)["memory"]
    assert [i["uid"] for i in memory["used"]] == ["other"]
    assert {i["uid"] for i in memory["produced"]} == {"made", "cmp"}
    assert [i["uid"] for i in memory["attempts"]] == ["failed"]
    text = invoke("show", str(run_dir), "--node", "1")
    assert "memory shown to the diagnosis that made node 1" in text.output and "Rewrite the loop" in text.output


def test_the_tui_summary_shows_memory_used_and_made(run_dir: Path) -> None:
    data = RunData.open(run_dir)
    try:
        rows = dict(data.detail(1).rows())
        assert "Keep notes outside the package" in rows["memory shown"] and "[hurt]" in rows["memory shown"]
        assert rows["memory made"].startswith("3 item(s)") and "Rewrite the loop" in rows["memory made"]
        assert "memory shown" not in dict(data.detail(0).rows())
    finally:
        data.close()


def test_run_refuses_a_bad_bank_before_writing_anything(run_dir: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    result = invoke("run", "--run-dir", str(tmp_path / "new"), "--memory", str(run_dir / "hgm.db"))
    assert result.exit_code == 2 and "hgm run database" in result.output
    result = invoke("run", "--run-dir", str(tmp_path / "new"), "--memory", "x.db", "--no-memory")
    assert result.exit_code == 2 and "contradict" in result.output
    assert snapshot(tmp_path) == before
