"""The TUI's data layer on real archives: the same numbers as `hgm show`, details, pages, artifacts."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archive import EvalRecord, ExpansionRecord, Run
from hgm.cli import build_app
from hgm.tui.data import NodeDetail, RunData, _row, list_runs, parse_trajectory, readable_diagnosis
from tools.tui_demo import small_agent


@pytest.fixture
def data(demo_run: Path):
    handle = RunData.open(demo_run)
    yield handle
    handle.close()


def test_snapshot_matches_hgm_show(data: RunData, demo_run: Path) -> None:
    shown = json.loads(CliRunner().invoke(build_app(), ["show", str(demo_run), "--json"]).stdout)
    snap = data.snapshot()
    assert snap.header.nodes == shown["run"]["nodes"] == len(snap.nodes)
    assert snap.header.evaluations == shown["run"]["evaluations"]
    assert snap.header.shipped == shown["best"]["node"]
    assert [n for n in snap.nodes if snap.nodes[n].shipped] == [shown["best"]["node"]]
    for row in shown["nodes"]:
        mine = snap.nodes[row["id"]]
        assert (mine.parent_id, mine.evals, mine.successes, mine.clade_evals) == (
            row["parent"], row["evals"], row["resolved"], row["clade_evals"])
        assert mine.mean == row["mean"] and mine.clade_mean == row["clade_mean"]
        assert (None if mine.low is None else [mine.low, mine.high]) == row["ci95"]
        assert mine.score == row["score"]
    failed = {f["parent"] for f in shown["failed_expansions"]}
    assert {n for n, r in snap.nodes.items() if r.failed_expansions} == failed
    assert snap.header.budget_evals == 80 and snap.header.budget_usd == 2.0
    assert snap.header.status == "finished" and not snap.header.live
    assert snap.header.cost_usd > 0


def test_tree_helpers_order_by_clade_and_walk_lineage(data: RunData) -> None:
    snap = data.snapshot()
    root = snap.root_id
    by_id = snap.children(root)
    by_clade = snap.children(root, by_clade=True)
    assert by_id == sorted(by_id) and sorted(by_clade) == by_id
    estimates = [snap.nodes[i].clade_mean for i in by_clade]
    assert estimates == sorted(estimates, reverse=True)
    shipped = snap.header.shipped
    path = snap.lineage(shipped)
    assert path[0] == root and path[-1] == shipped
    assert all(snap.nodes[b].parent_id == a for a, b in zip(path, path[1:]))
    assert snap.with_ancestors([shipped]) == set(path)


def test_detail_of_a_child_and_of_the_seed(data: RunData) -> None:
    snap = data.snapshot()
    child = next(n for n in snap.nodes.values() if n.parent_id is not None and n.evals)
    rows = dict(data.detail(child.id, child).rows())
    assert rows["version"] == str(child.id) and rows["parent"] == str(child.parent_id)
    assert rows["operator"] == "self_improve"
    assert rows["acceptance"].startswith("accepted (expansion #")
    assert rows["lesson"] and "what went wrong:" in rows["diagnosis"] and "proposal:" in rows["diagnosis"]
    assert rows["own"].startswith(f"{child.mean:.2f} ({child.successes}/{child.evals} resolved)")
    assert "$" in rows["made for"] and "tokens" in rows["made for"]
    assert rows["model calls"].split()[0].isdigit()
    seed = dict(data.detail(snap.root_id, snap.nodes[snap.root_id]).rows())
    assert seed["acceptance"] == "seed agent (no parent)" and "made for" not in seed
    assert "failed expansions" in dict(data.detail(next(n for n, r in snap.nodes.items() if r.failed_expansions)).rows())


def test_a_new_summary_row_is_one_more_field() -> None:
    @dataclasses.dataclass(frozen=True)
    class WithLedger(NodeDetail):
        admission: str | None = _row("admission")

    rows = WithLedger(version="3", admission="admitted (4 checks passed)").rows()
    assert rows == [("version", "3"), ("admission", "admitted (4 checks passed)")]


def test_evaluation_and_call_pages(data: RunData, demo_run: Path) -> None:
    with Run.open(demo_run) as run:
        node = max(range(run.info().nodes), key=lambda n: len(run.evaluations(n)))
        rows = run.evaluations(node)
        calls = run.llm_calls(node)
    assert data.evaluation_count(node) == len(rows)
    first, rest = data.evaluations(node, 0, 3), data.evaluations(node, 3, 100)
    assert [r.id for r in first + rest] == [r["id"] for r in rows]
    assert all(r.duration is not None and r.trajectory_path for r in first)
    assert data.llm_call_count(node) == len(calls)
    assert [c.purpose for c in data.llm_calls(node, 0, 500)] == [c["purpose"] for c in calls]


def test_trajectory_reads_steps_patch_and_report(data: RunData) -> None:
    row = next(r for r in data.evaluations(0) if r.status == "resolved")
    view = data.trajectory(row)
    assert view.notes == []
    assert len(view.steps) >= 3 and view.steps[0].action.startswith("grep")
    assert view.steps[-1].action == "submit"
    assert any("passed" in s.observation for s in view.steps)
    assert view.patch.startswith("diff --git")
    assert json.loads(view.report)["report"][row.task_id]["resolved"] is True
    assert "PASSED" in view.test_log


def test_trajectory_survives_missing_and_broken_artifacts(data: RunData, demo_run: Path, tmp_path: Path) -> None:
    row = data.evaluations(0)[0]
    missing = dataclasses.replace(row, trajectory_path="evals/nowhere/trajectory.jsonl", log_path=None)
    view = data.trajectory(missing)
    assert view.steps == [] and view.patch == "" and view.report == ""
    assert "missing or empty" in view.notes[0]
    assert data.trajectory(dataclasses.replace(row, trajectory_path=None, log_path=None)).notes == [
        "no trajectory was recorded for this evaluation"]
    steps = parse_trajectory('{"step": 1, "action": "ls", "observation": {"exit_code": 2, "output": "x"}}\n'
                             "not json\n[1, 2]\n"
                             '{"step": 4, "action": null, "llm_error": "HTTP 402 budget_exceeded"}\n'
                             '{"step": 5, "action": "ls", "messages": [{"role": "user", "content": "go"}, {"role": '
                             '"assistant", "content": "THOUGHT: look first.\\n```bash\\nls\\n```"}]}\n')
    assert (steps[0].action, steps[0].exit_code, steps[0].observation) == ("ls", 2, "x")
    assert steps[1].note.startswith("unreadable line") and steps[2].observation == "[1, 2]"
    assert steps[3].note == "llm error: HTTP 402 budget_exceeded"
    assert (steps[4].action, steps[4].thought) == ("ls", "look first.")


def test_readable_diagnosis() -> None:
    stored = json.dumps({"fell_back": True, "problem": "Make edits.", "reply": None})
    assert readable_diagnosis(stored) == "Make edits.\n(the model's diagnosis failed; the lesson's default text was used)"
    assert readable_diagnosis("plain words") == "plain words"
    assert readable_diagnosis("") is None


def test_work_in_flight_is_seen_from_model_calls(tmp_path: Path) -> None:
    with Run.create(tmp_path / "live", {}, small_agent(tmp_path / "seed")) as run:
        run.log_event("session_start", {"session": "s"})
        run.set_status("running")
        run.record_eval(EvalRecord(0, "t1", "resolved"))
        run.record_llm_call(purpose="solve", node_id=0, task_id="t2")
        run.record_llm_call(purpose="diagnose", node_id=0)
        data = RunData.open(run.path)
        try:
            snap = data.snapshot()
            assert snap.header.live and snap.header.status == "running"
            flight = snap.nodes[0].in_flight
            assert (flight.evaluations, flight.expanding) == (1, True)
            run.record_eval(EvalRecord(0, "t2", "unresolved"))
            run.record_expansion(ExpansionRecord(0, "failed", reason="own tests failed"))
            assert not data.snapshot().nodes[0].in_flight
            run.set_status("stopped")
            assert data.snapshot().header.live is False
        finally:
            data.close()


def test_changed_sees_other_writers_only(tmp_path: Path) -> None:
    with Run.create(tmp_path / "r", {}, small_agent(tmp_path / "seed")) as run:
        data = RunData.open(run.path)
        try:
            assert data.changed()  # the first call always reports a change
            assert not data.changed()
            data.snapshot()
            assert not data.changed()
            run.record_eval(EvalRecord(0, "t1", "resolved"))
            assert data.changed() and not data.changed()
        finally:
            data.close()


def test_list_runs_newest_first_with_unreadable_ones(demo_run: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(demo_run, runs / "older")
    with Run.create(runs / "newer", {}, small_agent(tmp_path / "seed")):
        pass
    broken = runs / "broken"
    shutil.copytree(runs / "newer", broken)
    shutil.rmtree(broken / "agents.git")
    listing = list_runs(runs)
    assert [r.name for r in listing if not r.error] == ["newer", "older"]
    older = next(r for r in listing if r.name == "older")
    assert (older.status, older.nodes) == ("finished", 13) and older.best.endswith("evals)")
    bad = next(r for r in listing if r.name == "broken")
    assert bad.status == "unreadable" and "agents.git" in bad.error
    assert list_runs(tmp_path / "nowhere") == []


def test_export_is_the_cli_export(data: RunData, demo_run: Path, tmp_path: Path) -> None:
    shipped = data.snapshot().header.shipped
    data.export(shipped, tmp_path / "tui.patch", "patch")
    result = CliRunner().invoke(build_app(), ["export", str(demo_run), "--node", str(shipped),
                                              "--format", "patch", "--to", str(tmp_path / "cli.patch")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tui.patch").read_text() == (tmp_path / "cli.patch").read_text() != ""
    with pytest.raises(FileExistsError):
        data.export(shipped, tmp_path / "tui.patch", "patch")
