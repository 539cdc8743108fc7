"""Fixtures for the TUI tests: real archives built with the archive's own write API."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tools.tui_demo import build_demo_run, small_agent


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch):
    """Dates on screen in UTC, whatever the machine's zone (snapshots compare them)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished demo run (13 versions, ~80 evaluations with artifacts); tests only read it."""
    root = tmp_path_factory.mktemp("tui")
    return build_demo_run(root / "runs" / "demo", seed_dir=small_agent(root / "seed"))


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (marked `anyio`) run on asyncio, Textual's event loop."""
    return "asyncio"
