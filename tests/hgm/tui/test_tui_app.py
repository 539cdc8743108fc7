"""`hgm tui` in Textual's pilot on a real demo archive: what is on screen and on disk."""

from __future__ import annotations

import filecmp
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archive import Run
from hgm.cli import build_app
from hgm.tui.app import HgmTui, theme_for
from hgm.tui.data import RunData
from hgm.tui.run_screen import RunScreen
from hgm.tui.trajectory import TrajectoryScreen
from tests.hgm.tui.helpers import ready, screen_text, shows_version, until
from tools.tui_demo import DEMO_START, small_agent

pytestmark = pytest.mark.anyio

NARROW = (80, 24)
WIDE = (160, 48)


def app_for(run: Path, **kwargs) -> HgmTui:
    return HgmTui(RunData.open(run), follow=False, **kwargs)


def tree_ids(app: HgmTui) -> list[int]:
    """The version ids of the tree's rows, top to bottom, as the screen shows them."""
    tree = app.run_screen.agent_tree
    lines = tree.render_lines(tree.region.reset_offset)  # what is painted in the tree's region
    ids = []
    for strip in lines:
        match = re.match(r"^[\s│├└▶▼─]*(\d+)\b", strip.text)
        if match:
            ids.append(int(match.group(1)))
    return ids


def summary(app: HgmTui) -> str:
    return app.run_screen.query_one("SummaryPane").text()


@pytest.mark.parametrize("size", [NARROW, WIDE])
async def test_opens_with_header_tree_summary_and_every_key_in_the_footer(demo_run: Path, size) -> None:
    app = app_for(demo_run)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        text = screen_text(app)
        lines = text.splitlines()
        header, footer = lines[0], lines[-1]
        for word in ("demo", "finished", "evals 79/80", "13 nodes", "$0.", "ships ★9"):
            assert word in header
        for binding in RunScreen.BINDINGS:
            if binding.show and binding.action not in ("replay_play",):
                assert f"{binding.key_display or binding.key} {binding.description}" in footer, binding.description
        assert tree_ids(app) == [0, 1, 8, 10]  # the root opens with its children
        assert shows_version(app, 0) and "version" in text and "seed agent (no parent)" in text
        assert len(lines) == size[1] and all(len(line) <= size[0] for line in lines)


async def test_vim_keys_move_open_and_close(demo_run: Path) -> None:
    app = app_for(demo_run)
    async with app.run_test(size=NARROW) as pilot:
        await ready(pilot)
        screen = app.run_screen
        await pilot.press("j")
        assert screen.agent_tree.cursor_id == 1
        await until(pilot, lambda: shows_version(app, 1), what="summary of 1")
        assert "parent        0" in summary(app) and "lesson" in summary(app)
        await pilot.press("l")
        await until(pilot, lambda: tree_ids(app) == [0, 1, 2, 3, 7, 8, 10], what="1's children")
        await pilot.press("G")
        assert screen.agent_tree.cursor_id == 10
        await pilot.press("g")
        assert screen.agent_tree.cursor_id == 0
        await pilot.press("down", "down", "down")
        assert screen.agent_tree.cursor_id == 3
        await pilot.press("h")  # 3 is closed: back to its parent
        assert screen.agent_tree.cursor_id == 1
        await pilot.press("h")
        await until(pilot, lambda: tree_ids(app) == [0, 1, 8, 10], what="1 closed")


async def test_filter_lineage_and_sort(demo_run: Path) -> None:
    app = app_for(demo_run)
    async with app.run_test(size=NARROW) as pilot:
        await ready(pilot)
        await pilot.press("slash")
        await pilot.press(*"ledger-3", "enter")
        # nodes 2 and 10 learned from ledger-3; their ancestors stay to show where they are
        await until(pilot, lambda: tree_ids(app) == [0, 1, 2, 10], what="the filtered tree")
        await until(pilot, lambda: shows_version(app, 2), what="the first match selected")
        await pilot.press("escape")
        await until(pilot, lambda: 8 in tree_ids(app), what="the filter cleared")

        await pilot.press("b")  # the shipped version's lineage only
        await until(pilot, lambda: tree_ids(app) == [0, 1, 3, 6, 9], what="the lineage of 9")
        await until(pilot, lambda: app.run_screen.agent_tree.cursor_id == 9, what="the cursor on 9")
        await pilot.press("b")
        await until(pilot, lambda: 10 in tree_ids(app), what="every version again")

        tree = app.run_screen.agent_tree
        tree.reveal(1)
        await until(pilot, lambda: tree.cursor_id == 1, what="the cursor on 1")

        def order(ids: list[int]) -> list[int]:
            return [i for i in ids if i in (2, 3, 7)]  # node 1's children, in screen order

        assert order(tree_ids(app)) == [2, 3, 7]
        await pilot.press("s")  # children by clade estimate: 3 (.79), 7 (.67), 2 (.40)
        await until(pilot, lambda: order(tree_ids(app)) == [3, 7, 2], what="children by clade estimate")
        assert tree.cursor_id == 1  # the cursor stayed on its version
        await pilot.press("s")
        await until(pilot, lambda: order(tree_ids(app)) == [2, 3, 7], what="children by id")


async def test_diff_against_parent_then_against_a_picked_version(demo_run: Path) -> None:
    data = RunData.open(demo_run)
    try:
        expected_parent, expected_picked = data.diff(0, 8), data.diff(9, 8)
    finally:
        data.close()
    app = app_for(demo_run)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot)
        pane = app.run_screen.query_one("DiffPane")
        app.run_screen.agent_tree.reveal(8)
        await until(pilot, lambda: app.run_screen.selected == 8, what="8 selected")
        await pilot.press("2")
        await until(pilot, lambda: pane.diff_text == expected_parent, what="the diff against the parent")
        text = screen_text(app)
        assert "version 0 (parent) → 8" in text and "+QUIET_TOOLS" in text
        await pilot.press("d")
        await pilot.press("9", "enter")  # type an id, enter picks it
        await until(pilot, lambda: pane.diff_text == expected_picked, what="the diff against 9")
        assert "version 9 (picked) → 8" in screen_text(app)


async def test_evaluations_table_opens_the_trajectory(demo_run: Path) -> None:
    app = app_for(demo_run)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot)
        screen = app.run_screen
        await pilot.press("3")
        table = screen.query_one("#evals-table")
        await until(pilot, lambda: len(table.items) == 10, what="node 0's evaluations")
        text = screen_text(app)
        assert "node 0: 10 evaluations" in text
        for column in ("task", "outcome", "duration", "tokens", "cost"):
            assert column in text
        first = table.items[0]
        assert first.task_id in text and first.status in text
        table.focus()
        await pilot.press("j", "enter")
        await until(pilot, lambda: isinstance(app.screen, TrajectoryScreen) and app.screen.view is not None,
                    what="the trajectory viewer")
        text = screen_text(app)
        row = table.items[1]
        assert row.task_id in text and "step 1" in text and "$ grep -rn" in text
        await pilot.press("p")  # jump to the final patch
        await pilot.pause()
        text = screen_text(app)
        assert "final patch" in text or row.status == "empty_patch"
        await pilot.press("G")
        await pilot.pause()
        assert "test log" in screen_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back to the run")


async def test_model_calls_tab(demo_run: Path) -> None:
    app = app_for(demo_run)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot)
        await pilot.press("4")
        table = app.run_screen.query_one("#calls-table")
        await until(pilot, lambda: table.total and len(table.items) == table.total, what="node 0's model calls")
        text = screen_text(app)
        assert f"node 0: {table.total} model calls" in text
        assert "diagnose" in text and "improve" in text and "solve" in text
        assert "rate limited (429)" in text  # a failed call shows its error


async def test_export_writes_what_hgm_export_writes_and_copy_id(demo_run: Path, tmp_path: Path) -> None:
    app = app_for(demo_run, export_dir=tmp_path / "exports")
    async with app.run_test(size=NARROW) as pilot:
        await ready(pilot)
        app.run_screen.agent_tree.reveal(9)
        await until(pilot, lambda: app.run_screen.selected == 9, what="9 selected")
        await pilot.press("c")
        assert app.clipboard == "9"
        await pilot.press("e")
        await pilot.pause()
        default = tmp_path / "exports" / "demo-node9"
        assert app.screen.query_one("#export-path").value == str(default)
        await pilot.press("enter")
        await until(pilot, lambda: default.is_dir(), what="the export")
    result = CliRunner().invoke(build_app(), ["export", str(demo_run), "--node", "9", "--to", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    comparison = filecmp.dircmp(default, tmp_path / "cli")
    assert comparison.left_list == comparison.right_list and not comparison.diff_files
    assert (default / "agent" / "shell.py").is_file()


async def test_export_into_an_existing_path_is_refused(demo_run: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    app = app_for(demo_run)
    async with app.run_test(size=NARROW) as pilot:
        await ready(pilot)
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one("#export-path").value = str(taken)
        await pilot.press("enter")
        await until(pilot, lambda: any("export failed" in n.message for n in app._notifications), what="the error")
    assert list(taken.iterdir()) == []


async def test_help_and_command_palette(demo_run: Path) -> None:
    app = app_for(demo_run)
    async with app.run_test(size=WIDE) as pilot:
        await ready(pilot)
        commands = {c.title for c in app.get_system_commands(app.run_screen)}
        for binding in RunScreen.BINDINGS:
            if binding.action.startswith("replay_"):
                continue  # only while replaying
            assert binding.description in commands, binding.description
        await pilot.press("question_mark")
        await pilot.pause()
        text = screen_text(app)
        for words in ("Lineage", "Show only the shipped version's lineage", "Down", "Evaluations: open the trajectory"):
            assert words in text
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Lineage")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: tree_ids(app) == [0, 1, 3, 6, 9], what="the lineage from the palette")


async def test_replay_steps_through_the_run(demo_run: Path) -> None:
    app = app_for(demo_run)
    async with app.run_test(size=NARROW) as pilot:
        await ready(pilot)
        screen = app.run_screen
        await pilot.press("r")
        await until(pilot, lambda: screen.replay is not None, what="the replay")
        assert tree_ids(app) == [0] and "replay" in screen_text(app).splitlines()[0]
        footer = screen_text(app).splitlines()[-1]
        assert "p Play" in footer and "f Follow" not in footer
        while 1 not in screen.snapshot.nodes:
            await pilot.press("full_stop")
        await until(pilot, lambda: tree_ids(app) == [0, 1], what="node 1 appearing")
        assert "node 1 added" in screen_text(app).splitlines()[0]
        await pilot.press("comma")
        await until(pilot, lambda: tree_ids(app) == [0], what="node 1 gone again")
        screen.replay.seek(screen.replay.end - 1)
        await pilot.press("full_stop")
        await until(pilot, lambda: set(tree_ids(app)) >= {0, 1, 8, 10}, what="the whole tree")
        await pilot.press("r")
        await until(pilot, lambda: screen.replay is None and "finished" in screen_text(app).splitlines()[0],
                    what="back to now")


async def test_picker_lists_runs_newest_first_and_opens_one(demo_run: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(demo_run, runs / "demo")
    with Run.create(runs / "fresh", {}, small_agent(tmp_path / "seed")):
        pass
    app = HgmTui(None, runs, follow=False, clock=lambda: DEMO_START + 86400 * 400)
    async with app.run_test(size=NARROW) as pilot:
        await until(pilot, lambda: len(app.screen.runs) == 2, what="the runs")
        text = screen_text(app)
        assert text.index("fresh") < text.index("demo")  # newest first
        for column in ("status", "nodes", "evals", "best", "age"):
            assert column in text
        assert re.search(r"demo\s+finished\s+13\s+79\s+1\.00 \(node 9", text)
        await pilot.press("j", "enter")
        await ready(pilot)
        assert "ships ★9" in screen_text(app).splitlines()[0]
        await pilot.press("escape")
        await until(pilot, lambda: app.run_screen is None, what="back to the picker")


async def test_sixteen_colour_terminal_uses_the_terminals_palette(demo_run: Path) -> None:
    assert theme_for("standard") == "ansi-dark" and theme_for("truecolor") is None and theme_for("256") is None
    app = app_for(demo_run)
    async with app.run_test(size=NARROW) as pilot:
        app.theme = "ansi-dark"  # what a 16-colour terminal gets (headless apps keep the default)
        await ready(pilot)
        assert "ships ★9" in screen_text(app) and tree_ids(app) == [0, 1, 8, 10]
