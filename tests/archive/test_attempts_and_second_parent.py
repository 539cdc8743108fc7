"""Schema 2: an evaluation's attempts, a recombined node's second parent, and runs of schema 1."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from archive import AttemptRecord, EvalRecord, ExpansionRecord, Run, UnknownNode
from tests.archive.helpers import downgrade, make_agent


def _attempts() -> tuple[AttemptRecord, ...]:
    return (
        AttemptRecord(1, 1, "sample", features={"applies": True, "regressions": 0}, summary={"approach": "a"},
                      tokens=10, patch_path="attempts/a01/patch.diff"),
        AttemptRecord(2, 2, "recombine", parents=(1, 3), selected=True, guidance="keep both", detail="summary failed"),
    )


def test_attempts_are_stored_with_their_evaluation(run: Run) -> None:
    eval_id = run.record_eval(EvalRecord(0, "t1", "resolved", attempts=_attempts()))
    run.record_eval(EvalRecord(0, "t2", "unresolved"))  # one attempt: no attempt rows
    rows = run.attempts(eval_id)
    assert [(r["idx"], r["operator"], r["parents"], r["selected"]) for r in rows] == [
        (1, "sample", [], False), (2, "recombine", [1, 3], True)]
    assert rows[0]["features"] == {"applies": True, "regressions": 0} and rows[0]["summary"] == {"approach": "a"}
    assert rows[1]["detail"] == "summary failed" and len(run.attempts()) == 2
    with pytest.raises(ValueError, match="operator"):
        AttemptRecord(1, 1, "mutate")


def test_bulk_evaluations_keep_their_attempts(run: Run) -> None:
    run.record_evals([EvalRecord(0, "t1", "resolved", attempts=_attempts()), EvalRecord(0, "t2", "unresolved")])
    assert len(run.attempts()) == 2


def test_a_recombined_node_has_two_parents_in_git_and_one_in_the_tree(run: Run, tmp_path: Path) -> None:
    a = run.add_node(0, make_agent(tmp_path / "a", "A = 1\n"), "revise")
    b = run.add_node(0, make_agent(tmp_path / "b", "B = 1\n"), "revise")
    record = ExpansionRecord(a, "ok", operator="recombine", second_parent_id=b)
    child = run.add_node(a, make_agent(tmp_path / "c", "A = B = 1\n"), "recombine", expansion=record)
    tree = run.tree()
    assert tree[child].parent_id == a and tree[child].second_parent_id == b and tree[a].children == [child]
    assert child not in tree[b].children  # the tree stays a tree by primary parent
    commit = run.agents.repo.commit(run.commit_of(child))
    assert [p.hexsha for p in commit.parents] == [run.commit_of(a), run.commit_of(b)]
    stored = run.expansions()[-1]
    assert (stored["operator"], stored["second_parent_id"], stored["child_id"]) == ("recombine", b, child)
    with pytest.raises(UnknownNode):
        run.add_node(a, make_agent(tmp_path / "d"), "recombine", second_parent_id=99)


def test_a_schema_2_run_opens_read_only_and_is_migrated_by_a_writer(run: Run, tmp_path: Path) -> None:
    child = run.add_node(0, make_agent(tmp_path / "a", "A = 1\n"), "self_improve")
    run.record_eval(EvalRecord(child, "t1", "resolved"))
    path = run.path
    run.close()
    downgrade(path / "hgm.db", 2)
    with Run.open(path) as reader:  # read-only: no migration, yet everything reads
        tree = reader.tree()
        assert tree[child].parent_id == 0 and tree[child].second_parent_id is None and tree[child].evals == [1]
        assert reader.attempts() == [] and "second_parent_id" not in reader.node(child)
    with Run.open(path, writable=True) as writer:
        assert writer.node(child)["second_parent_id"] is None
        eval_id = writer.record_eval(EvalRecord(child, "t2", "unresolved", attempts=_attempts()))
        assert len(writer.attempts(eval_id)) == 2
        writer.record_expansion(ExpansionRecord(child, "failed", reason="x", operator="refine"))
        assert writer.expansions()[-1]["operator"] == "refine"
    conn = sqlite3.connect(path / "hgm.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
    conn.close()
