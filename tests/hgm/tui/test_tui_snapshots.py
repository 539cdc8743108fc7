"""Snapshots (pytest-textual-snapshot) of the main views on the fixed-clock demo run.

A change in how a view looks fails here; when the change is wanted, look at the new
pictures (`pytest --snapshot-report`) and accept them with `--snapshot-update`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hgm.tui.app import HgmTui
from hgm.tui.data import RunData
from hgm.tui.trajectory import TrajectoryScreen
from tests.hgm.tui.helpers import ready, shows_version, until
from tools.tui_demo import DEMO_START

NARROW = (80, 24)
WIDE = (120, 36)


@pytest.fixture
def app(demo_run: Path):
    handle = RunData.open(demo_run)
    yield HgmTui(handle, follow=False)
    handle.close()


def select(node_id: int, *keys: str):
    """A `run_before` that opens the run, puts the cursor on `node_id` and presses `keys`."""

    async def run_before(pilot) -> None:
        await ready(pilot)
        screen = pilot.app.run_screen
        screen.agent_tree.reveal(node_id)
        await until(pilot, lambda: screen.selected == node_id and shows_version(pilot.app, node_id),
                    what=f"version {node_id}")
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.3)
        pilot.app.clear_notifications()
        await pilot.pause()

    return run_before


def test_main_view_narrow(app, snap_compare) -> None:
    assert snap_compare(app, terminal_size=NARROW, run_before=select(0))


def test_main_view_wide_on_the_shipped_version(app, snap_compare) -> None:
    assert snap_compare(app, terminal_size=WIDE, run_before=select(9))


def test_diff_tab(app, snap_compare) -> None:
    async def run_before(pilot) -> None:
        await select(8, "2")(pilot)
        await until(pilot, lambda: pilot.app.run_screen.query_one("DiffPane").diff_text, what="the diff")

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def full_table(node_id: int, key: str, table_id: str):
    """A `run_before` that selects `node_id`, opens a tab by `key` and waits for its whole table."""

    async def run_before(pilot) -> None:
        await select(node_id, key)(pilot)
        table = pilot.app.run_screen.query_one(table_id)
        await until(pilot, lambda: table.items and len(table.items) == table.total, what=f"{table_id} filled")

    return run_before


def test_evaluations_tab(app, snap_compare) -> None:
    assert snap_compare(app, terminal_size=WIDE, run_before=full_table(3, "3", "#evals-table"))


def test_model_calls_tab(app, snap_compare) -> None:
    assert snap_compare(app, terminal_size=WIDE, run_before=full_table(3, "4", "#calls-table"))


def test_trajectory_viewer(app, snap_compare) -> None:
    async def run_before(pilot) -> None:
        await select(3, "3")(pilot)
        screen = pilot.app.run_screen
        table = screen.query_one("#evals-table")
        await until(pilot, lambda: table.items, what="the evaluations")
        table.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, TrajectoryScreen) and pilot.app.screen.view,
                    what="the trajectory")
        await pilot.pause()

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_help(app, snap_compare) -> None:
    assert snap_compare(app, terminal_size=WIDE, run_before=select(0, "question_mark"))


def test_run_picker(demo_run: Path, snap_compare, monkeypatch) -> None:
    monkeypatch.chdir(demo_run.parent.parent)
    app = HgmTui(None, Path("runs"), follow=False, clock=lambda: DEMO_START + 5 * 86400)

    async def run_before(pilot) -> None:
        await until(pilot, lambda: getattr(pilot.app.screen, "runs", None), what="the run list")

    assert snap_compare(app, terminal_size=NARROW, run_before=run_before)
