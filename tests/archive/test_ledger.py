"""The ledger (admission decisions, retirements), contaminated evaluations, evaluation
flags, and the migration of a schema-1 run to them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from archive import AdmissionRecord, ArchiveError, EvalRecord, ExpansionRecord, Run, UnknownNode
from archive import schema
from tests.archive.helpers import downgrade, make_agent

CHECKS = ({"name": "size", "verdict": "pass", "reason": "12 bytes more"},)


def child(tmp_path: Path, name: str, body: str) -> Path:
    return make_agent(tmp_path / name, body)


def test_accepted_child_gets_one_ledger_row_with_both_commits(run: Run, tmp_path: Path) -> None:
    admission = AdmissionRecord(0, "accepted", diff_sha256="d" * 64, child_digest="c" * 64, checks=CHECKS,
                                producer={"operator": "self_improve", "model": "scripted:x", "job": "s-1"})
    node = run.add_node(0, child(tmp_path, "c1", "print(1)\n"), "self_improve",
                        expansion=ExpansionRecord(0, "ok"), admission=admission)
    [row] = run.ledger()
    assert (row["kind"], row["decision"], row["node_id"], row["parent_id"]) == ("admission", "accepted", node, 0)
    assert row["parent_commit"] == run.commit_of(0) and row["child_commit"] == run.commit_of(node)
    assert row["diff_sha256"] == "d" * 64 and row["child_digest"] == "c" * 64
    assert row["checks"] == [dict(CHECKS[0])] and row["producer"]["model"] == "scripted:x"
    assert row["expansion_id"] == run.expansions()[0]["id"]
    assert run.ledger(node) == [row] and run.ledger(0) == [row]  # as the child, and as the parent


def test_rejected_child_is_a_ledger_row_beside_its_failed_expansion(run: Run) -> None:
    rejection = AdmissionRecord(0, "rejected", reason="capabilities: reads OPENAI_API_KEY", checks=CHECKS)
    run.record_expansion(ExpansionRecord(0, "failed", reason="rejected by the gate"), admission=rejection)
    [row] = run.ledger()
    assert row["decision"] == "rejected" and row["node_id"] is None and row["child_commit"] == ""
    assert row["expansion_id"] == run.expansions()[0]["id"] and "OPENAI_API_KEY" in row["reason"]
    with pytest.raises(ValueError):  # an acceptance cannot ride on a failed expansion
        run.record_expansion(ExpansionRecord(0, "failed"), admission=AdmissionRecord(0, "accepted"))


def test_a_refused_admission_row_rolls_back_the_whole_node(run: Run, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        run.add_node(0, child(tmp_path, "c1", "x\n"), admission=AdmissionRecord(0, "rejected"))
    assert len(run.tree()) == 1 and run.ledger() == []


def test_retire_marks_the_clade_and_is_recorded(run: Run, tmp_path: Path) -> None:
    a = run.add_node(0, child(tmp_path, "a", "a\n"))
    b = run.add_node(a, child(tmp_path, "b", "b\n"))
    c = run.add_node(0, child(tmp_path, "c", "c\n"))
    row_id = run.retire(a, "reads the hidden tests", {"user": "tester"})
    tree = run.tree()
    assert tree[a].status == "retired" and tree.retired_clades() == {a, b}
    assert c not in tree.retired_clades()
    [row] = [r for r in run.ledger() if r["id"] == row_id]
    assert (row["kind"], row["decision"], row["node_id"], row["reason"]) == ("retirement", "retired", a, "reads the hidden tests")
    assert row["producer"] == {"user": "tester"} and row["child_commit"] == run.commit_of(a)
    assert run.checkout(a, tmp_path / "still-there") is None  # nothing deleted
    with pytest.raises(ArchiveError, match="already retired"):
        run.retire(a, "again")
    with pytest.raises(ArchiveError, match="root"):
        run.retire(0, "no")
    with pytest.raises(ArchiveError, match="reason"):
        run.retire(c, "  ")
    with pytest.raises(UnknownNode):
        run.retire(99, "missing")


def test_contaminated_is_not_a_measurement_and_flags_are_counted(run: Run) -> None:
    run.record_eval(EvalRecord(0, "t1", "contaminated", detail="canary in trajectory"))
    run.record_eval(EvalRecord(0, "t1", "contaminated"))  # may repeat, like infra errors
    run.record_eval(EvalRecord(0, "t2", "resolved", flags=("machinery:strip",)))
    run.record_eval(EvalRecord(0, "t3", "unresolved", flags=("machinery:reject",)))
    run.record_eval(EvalRecord(0, "t4", "unresolved"))
    node = run.tree()[0]
    assert node.evals == [1, 0, 0] and node.contaminated == 2 and node.machinery == 2
    assert run.evaluated_pairs() == {(0, "t2"), (0, "t3"), (0, "t4")}
    assert run.evaluations(0)[2]["flags"] == "machinery:strip"
    with pytest.raises(ValueError):
        EvalRecord(0, "t5", "resolved", flags=("two words",))


def test_a_schema_1_run_opens_for_reading_and_migrates_for_writing(run: Run, tmp_path: Path) -> None:
    node = run.add_node(0, child(tmp_path, "a", "a\n"))
    run.record_eval(EvalRecord(node, "t1", "resolved", detail="old"))
    run.record_eval(EvalRecord(0, "t1", "error_infra"))
    path = run.path
    run.close()
    downgrade(path / "hgm.db", 1)
    with Run.open(path) as reader:  # readers never migrate, yet see everything an old run has
        assert reader.schema_version == 1
        tree = reader.tree()
        assert tree[node].evals == [1] and tree[node].machinery == 0 and reader.ledger() == []
    conn = sqlite3.connect(path / "hgm.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()
    with Run.open(path, writable=True) as writer:
        assert writer.schema_version == schema.SCHEMA_VERSION
        assert [(e["task_id"], e["status"], e["detail"], e["flags"]) for e in writer.evaluations()] == [
            ("t1", "resolved", "old", ""), ("t1", "error_infra", "", "")]
        writer.record_eval(EvalRecord(node, "t2", "contaminated"))
        writer.retire(node, "migrated and retired")
        assert writer.tree()[node].contaminated == 1 and len(writer.ledger()) == 1
    conn = sqlite3.connect(path / "hgm.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()
