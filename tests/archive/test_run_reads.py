"""The cheap read queries of a run: paging, totals, filters, search, timeline, change polling."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive import EvalRecord, ExpansionRecord, Run
from tests.archive.helpers import make_agent, snapshot, without_shm


@pytest.fixture
def filled(run: Run, tmp_path: Path) -> Run:
    """Seed 0 with child 1 (lesson/diagnosis text), a failed expansion of 1, evaluations and model calls."""
    child = make_agent(tmp_path / "child", "print('child')\n")
    run.add_node(0, child, "improve", lesson="failed task t_3", diagnosis="edit 50%_of lines",
                 expansion=ExpansionRecord(parent_id=0, status="ok", finished=100.0, cost_usd=0.5, tokens=70))
    run.record_expansion(ExpansionRecord(parent_id=1, status="failed", reason="own tests failed", finished=200.0))
    for i in range(5):
        run.record_eval(EvalRecord(0, f"t{i}", "resolved" if i < 2 else "unresolved", finished=10.0 + i,
                                   tokens=10, cost_usd=0.01))
    run.record_eval(EvalRecord(0, "t0", "error_infra", finished=20.0))
    run.record_eval(EvalRecord(1, "t0", "resolved", finished=150.0, tokens=5, cost_usd=0.5))
    run.record_llm_call(purpose="solve", node_id=1, task_id="t0", prompt_tokens=3, completion_tokens=4, cost_usd=0.1, at=140.0)
    run.record_llm_call(purpose="solve", node_id=1, task_id="t0", prompt_tokens=1, completion_tokens=1, at=145.0)
    run.record_llm_call(purpose="diagnose", node_id=1, error="timeout", at=190.0)
    run.record_llm_call(purpose="solve", node_id=0, task_id="t1", at=11.0)
    return run


def test_evaluations_are_paged_and_filtered_by_time(filled: Run) -> None:
    all_of_0 = filled.evaluations(0)
    assert [r["task_id"] for r in all_of_0] == ["t0", "t1", "t2", "t3", "t4", "t0"]
    assert [r["task_id"] for r in filled.evaluations(0, limit=2, offset=1)] == ["t1", "t2"]
    assert [r["task_id"] for r in filled.evaluations(0, offset=4)] == ["t4", "t0"]
    assert [r["node_id"] for r in filled.evaluations(since=20.0)] == [0, 1]
    assert filled.evaluations(7) == []


def test_totals_count_rows_measurements_and_money(filled: Run) -> None:
    totals = filled.evaluation_totals(0)
    assert (totals["rows"], totals["measured"], totals["resolved"], totals["tokens"]) == (6, 5, 2, 50)
    assert totals["cost_usd"] == pytest.approx(0.05)
    assert filled.evaluation_totals()["rows"] == 7
    assert filled.evaluation_totals(9) == {"rows": 0, "measured": 0, "resolved": 0, "tokens": 0, "cost_usd": 0}
    calls = filled.llm_call_totals(1)
    assert (calls["calls"], calls["errors"], calls["tokens"]) == (3, 1, 9)
    assert calls["cost_usd"] == pytest.approx(0.1)
    assert filled.llm_call_totals()["calls"] == 4


def test_expansions_by_parent_child_and_time(filled: Run) -> None:
    [made] = filled.expansions(child_id=1)
    assert (made["parent_id"], made["status"], made["tokens"]) == (0, "ok", 70)
    assert [e["status"] for e in filled.expansions(parent_id=1)] == ["failed"]
    assert [e["id"] for e in filled.expansions(since=150.0)] == [2]
    assert len(filled.expansions()) == 2


def test_llm_calls_paged_and_grouped_by_activity(filled: Run) -> None:
    calls = filled.llm_calls(1)
    assert [c["purpose"] for c in calls] == ["solve", "solve", "diagnose"]
    assert [c["time"] for c in filled.llm_calls(1, limit=1, offset=1)] == [145.0]
    groups = filled.llm_activity(since=100.0)
    assert [(g["node_id"], g["task_id"], g["purpose"], g["calls"], g["first"], g["last"]) for g in groups] == [
        (1, "t0", "solve", 2, 140.0, 145.0),
        (1, None, "diagnose", 1, 190.0, 190.0),
    ]


def test_find_nodes_searches_text_fields_literally(filled: Run) -> None:
    assert filled.find_nodes("IMPROVE") == [1]
    assert filled.find_nodes("seed") == [0]
    assert filled.find_nodes("t_3") == [1]
    assert filled.find_nodes("50%_") == [1]
    assert filled.find_nodes("%") == [1]  # a wildcard character is matched literally
    assert filled.find_nodes("1") == [1]
    assert filled.find_nodes("nothing like it") == []
    assert filled.find_nodes("", limit=1) == [0]


def test_timeline_orders_everything_by_time(filled: Run) -> None:
    items = filled.timeline()
    assert [i[0] for i in items] == sorted(i[0] for i in items)
    kinds = [(i[1], i[2]) for i in items if i[1] != "event"]
    assert ("node", 1) in kinds and ("expansion", 1) in kinds
    evals = [i for i in items if i[1] == "evaluation"]
    assert [(e[2], e[4], e[5], e[6]) for e in evals][:2] == [(0, "t0", "resolved", 1), (0, "t1", "resolved", 1)]
    assert ("evaluation", 0) in kinds and sum(1 for k in kinds if k[0] == "evaluation") == 7
    node1 = next(i for i in items if i[1] == "node" and i[2] == 1)
    assert (node1[3], node1[7]) == (0, "improve")
    assert {i[7] for i in items if i[1] == "event"} >= {"created"}


def test_data_version_changes_when_another_connection_commits(filled: Run) -> None:
    reader = Run.open(filled.path)
    try:
        before = reader.data_version()
        assert reader.data_version() == before
        filled.record_eval(EvalRecord(1, "t1", "unresolved"))
        assert reader.data_version() != before
        assert reader.evaluation_totals(1)["rows"] == 2
    finally:
        reader.close()


def test_reads_write_nothing(filled: Run) -> None:
    path = filled.path
    filled.close()
    Run.open(path).close()  # a reader brings SQLite's -wal/-shm files back; they hold no data
    before = without_shm(snapshot(path))
    with Run.open(path) as reader:
        reader.evaluations(0, limit=3)
        reader.evaluation_totals()
        reader.expansions(parent_id=0)
        reader.llm_calls(limit=2)
        reader.llm_call_totals()
        reader.llm_activity(0.0)
        reader.find_nodes("x")
        reader.timeline()
        reader.data_version()
    assert without_shm(snapshot(path)) == before

