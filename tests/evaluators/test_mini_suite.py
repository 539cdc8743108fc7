"""The bundled mini suite: every task validates (gold resolves, empty does not) on both backends.

Each backend validates the whole suite once, two tasks at a time (as `hgm suite validate
--workers 2`); each task's test then checks its own result.
"""

from __future__ import annotations

import pytest

from evaluators.suite import bundled_suites, load_suite
from evaluators.validate import TaskCheck, validate_suite


def _mini_ids() -> list[str]:
    if "mini" not in bundled_suites():
        return []
    return [t.instance_id for t in load_suite("mini").tasks()]


MINI_IDS = _mini_ids()


def test_mini_suite_is_bundled_and_loads() -> None:
    assert "mini" in bundled_suites()
    tasks = load_suite("mini").tasks()
    assert tasks, "the mini suite has no tasks"
    for task in tasks:
        assert task.FAIL_TO_PASS and task.patch.strip() and task.test_patch.strip()


def _validate_all(backend, tmp_path_factory: pytest.TempPathFactory) -> dict[str, TaskCheck]:
    with pytest.MonkeyPatch.context() as patch:  # the function-scoped cache isolation, for the module
        patch.setenv("HGM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "hgm-cache"))
        checks = validate_suite(load_suite("mini"), backend, workers=2, timeout=120)
    return {check.instance_id: check for check in checks}


@pytest.fixture(scope="module")
def docker_checks(docker_backend, tmp_path_factory: pytest.TempPathFactory) -> dict[str, TaskCheck]:
    return _validate_all(docker_backend, tmp_path_factory)


@pytest.fixture(scope="module")
def local_checks(local_backend, tmp_path_factory: pytest.TempPathFactory) -> dict[str, TaskCheck]:
    return _validate_all(local_backend, tmp_path_factory)


def test_every_task_is_validated_once_per_backend(local_checks: dict[str, TaskCheck]) -> None:
    assert sorted(local_checks) == sorted(MINI_IDS)


@pytest.mark.docker
@pytest.mark.parametrize("instance_id", MINI_IDS)
def test_mini_task_validates_on_docker(instance_id: str, docker_checks: dict[str, TaskCheck]) -> None:
    check = docker_checks[instance_id]
    assert check.ok, check.problem
    assert check.gold.resolved and not check.empty.resolved


@pytest.mark.slow
@pytest.mark.parametrize("instance_id", MINI_IDS)
def test_mini_task_validates_on_local_backend(instance_id: str, local_checks: dict[str, TaskCheck]) -> None:
    check = local_checks[instance_id]
    assert check.ok, check.problem
    assert check.gold.resolved and not check.empty.resolved
