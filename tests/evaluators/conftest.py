"""Fixtures of the evaluator tests: a tiny custom task repo and an isolated cache."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from taskrepo_fixture import build_task_repo  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HGM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "hgm-cache"))


@pytest.fixture(scope="session")
def calc_suite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_task_repo(tmp_path_factory.mktemp("calc") / "calc-suite")


@pytest.fixture(scope="session")
def docker_backend(require_or_skip):
    """The real Docker backend with hgm-base present (skip, or fail under HGM_REQUIRE_DOCKER=1)."""
    from sandbox import docker_unavailable_reason, get_backend

    reason = docker_unavailable_reason()
    if reason:
        require_or_skip("HGM_REQUIRE_DOCKER", reason)
    return get_backend("docker")


@pytest.fixture(scope="session")
def local_backend():
    from sandbox import get_backend

    return get_backend("local")
