"""Follow mode: the app watches a run that another thread is writing, as `hgm run` would."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from archive import EvalRecord, Run
from hgm.tui.app import HgmTui
from hgm.tui.data import RunData
from tests.hgm.tui.helpers import ready, screen_text, until
from tools.tui_demo import apply_edit, small_agent

pytestmark = pytest.mark.anyio

WIDE_ROOT = 40  # more children of the root than the screen has rows: the view must scroll


def row_of(app: HgmTui, node_id: int) -> int | None:
    """The screen row (within the tree) showing `node_id`, or None when it is off screen."""
    tree = app.run_screen.agent_tree
    for y, strip in enumerate(tree.render_lines(tree.region.reset_offset)):
        match = re.match(r"^[\s│├└▶▼─]*(\d+)\b", strip.text)
        if match and int(match.group(1)) == node_id:
            return y
    return None


async def test_follows_a_live_run_without_losing_the_cursor(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "runs" / "live", {"budget": {"evals": 100}}, small_agent(tmp_path / "seed"))
    run.import_nodes([(0, "self_improve")] * WIDE_ROOT + [(1, "self_improve")])  # 1..40 children of the root, 41 of 1
    run.log_event("session_start", {"session": "live"})
    run.set_status("running")
    for task in ("t1", "t2"):
        run.record_eval(EvalRecord(35, task, "resolved"))
    in_flight_seen, done = threading.Event(), threading.Event()
    latencies: list[float] = []
    errors: list[BaseException] = []

    def write(fn, *args, **kwargs):
        started = time.perf_counter()
        result = fn(*args, **kwargs)
        latencies.append(time.perf_counter() - started)
        return result

    def writer() -> None:
        try:
            child = tmp_path / "child"
            run.checkout(1, child)
            apply_edit(child, 0)
            new = [write(run.add_node, 1, child, "self_improve", lesson=f"lesson {i}") for i in range(3)]
            for i, node in enumerate(new):
                write(run.record_eval, EvalRecord(node, "t1", "resolved" if i else "unresolved"))
            for task in ("t3", "t4", "t5"):
                write(run.record_eval, EvalRecord(35, task, "unresolved"))
            write(run.record_llm_call, purpose="solve", node_id=new[0], task_id="t9")  # started, not finished
            in_flight_seen.wait(20)
            write(run.record_eval, EvalRecord(new[0], "t9", "resolved"))
            write(run.set_status, "finished")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            done.set()

    app = HgmTui(RunData.open(run.path), poll_s=0.05)  # follow: on by default while the run is live
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            screen = app.run_screen
            assert screen.follow and "following" in screen_text(app).splitlines()[0]
            tree = screen.agent_tree
            tree.reveal(1)
            await pilot.pause()
            await until(pilot, lambda: tree.cursor_id == 1, what="the cursor on 1")
            await pilot.press("l")  # node 1 open: its new children will appear above node 35
            tree.reveal(35)
            await until(pilot, lambda: screen.selected == 35 and row_of(app, 35) is not None, what="node 35")
            await pilot.press("3")
            table = screen.query_one("#evals-table")
            await until(pilot, lambda: len(table.items) == 2, what="35's two evaluations")
            table.move_cursor(row=1)
            tree.focus()
            row_before = row_of(app, 35)

            threading.Thread(target=writer, daemon=True).start()
            await until(pilot, lambda: tree.widget_of(42) is not None and "⟳" in str(tree.widget_of(42).label),
                        what="the in-flight badge on the new node 42")
            assert [c.data for c in tree.widget_of(1).children] == [41, 42, 43, 44]  # new children of the open node 1
            assert tree.cursor_id == 35 and row_of(app, 35) == row_before  # cursor and scroll kept
            tree.scroll_home(animate=False)
            await pilot.pause()
            assert "42 .00[.00-.79]/1 ⟳" in screen_text(app)  # what a user scrolling up sees
            assert screen.selected == 35
            await until(pilot, lambda: len(table.items) == 5, what="35's new evaluations in its table")
            assert table.cursor_row == 1
            in_flight_seen.set()
            await until(pilot, lambda: done.is_set() and "finished" in screen_text(app).splitlines()[0],
                        what="the run's end")
            await until(pilot, lambda: "⟳" not in str(tree.widget_of(42).label), what="the in-flight badge gone")
            header = screen_text(app).splitlines()[0]
            assert "evals 9/100" in header and "45 nodes" in header
    finally:
        in_flight_seen.set()
        done.wait(20)
        run.close()
    assert not errors, errors
    assert len(latencies) == 12 and max(latencies) < 1.0  # the reader never held the writer up


async def test_the_root_opens_when_its_first_child_arrives(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "runs" / "fresh", {}, small_agent(tmp_path / "seed"))
    run.set_status("running")
    app = HgmTui(RunData.open(run.path), poll_s=0.05)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            tree = app.run_screen.agent_tree
            assert not tree.root.children and "0 -/0" in screen_text(app)
            run.import_nodes([(0, "self_improve")])
            await until(pilot, lambda: tree.root.is_expanded and [c.data for c in tree.root.children] == [1],
                        what="the root open on its first child")
            assert re.search(r"^└ 1 -/0", screen_text(app), re.MULTILINE)
    finally:
        run.close()


async def test_a_run_that_cannot_be_read_any_more_stops_follow_not_the_app(tmp_path: Path, monkeypatch) -> None:
    from archive import CorruptDatabase

    run = Run.create(tmp_path / "runs" / "r", {}, small_agent(tmp_path / "seed"))
    run.set_status("running")
    app = HgmTui(RunData.open(run.path), poll_s=0.05)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            assert app.run_screen.follow

            def broken(self) -> None:
                raise CorruptDatabase("hgm.db is unreadable (disk I/O error)")

            monkeypatch.setattr(RunData, "snapshot", broken)
            run.import_nodes([(0, "self_improve")])  # a commit: the next poll reads, and fails
            await until(pilot, lambda: not app.run_screen.follow, what="follow off")
            assert any("disk I/O error" in n.message for n in app._notifications)
            assert app.is_running and "following" not in screen_text(app).splitlines()[0]
            await pilot.press("j")  # still answers keys
            assert app.run_screen.agent_tree.cursor_id == 0
    finally:
        run.close()
