"""Helpers for driving the TUI in Textual's pilot and reading what it shows."""

from __future__ import annotations

import re
import time

from hgm.tui.app import HgmTui


def screen_text(app: HgmTui) -> str:
    """What the terminal shows now, as plain text lines."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def until(pilot, condition, timeout: float = 10.0, what: str = "condition") -> None:
    """Let the app run until `condition()` holds (fails the test after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)
    await pilot.pause()


async def ready(pilot) -> None:
    """Wait for the run screen's first snapshot and the selected version's summary."""
    app = pilot.app
    await until(pilot, lambda: app.run_screen is not None and app.run_screen.ready, what="the first snapshot")
    await until(pilot, lambda: "version" in app.run_screen.query_one("SummaryPane").text(), what="the summary")


def shows_version(app: HgmTui, node_id: int) -> bool:
    """Does the Summary tab show version `node_id`?"""
    text = app.run_screen.query_one("SummaryPane").text()
    return re.search(rf"^version\s+{node_id}\s*$", text, re.MULTILINE) is not None
