"""Fixtures of the evaluation-path tests: the tiny calc task repo and an isolated cache."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "evaluators"))

from taskrepo_fixture import build_task_repo  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HGM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "hgm-cache"))


@pytest.fixture(scope="module")
def calc_suite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_task_repo(tmp_path_factory.mktemp("calc") / "calc-suite")
