"""Fixtures for archive tests: a seed agent folder and a freshly created run."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive import Run
from tests.archive.helpers import make_agent


@pytest.fixture
def seed_dir(tmp_path: Path) -> Path:
    return make_agent(tmp_path / "seed")


@pytest.fixture
def run(tmp_path: Path, seed_dir: Path):
    handle = Run.create(tmp_path / "runs" / "r1", {"model": "scripted", "budget": 10}, seed_dir, hgm_version="test")
    yield handle
    handle.close()
