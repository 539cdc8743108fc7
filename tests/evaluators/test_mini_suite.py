"""The bundled mini suite: every task validates (gold resolves, empty does not) on both backends."""

from __future__ import annotations

import pytest

from evaluators.suite import bundled_suites, load_suite
from evaluators.validate import validate_task


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


@pytest.mark.docker
@pytest.mark.parametrize("instance_id", MINI_IDS)
def test_mini_task_validates_on_docker(instance_id: str, docker_backend) -> None:
    suite = load_suite("mini")
    check = validate_task(suite, suite.select([instance_id])[0], docker_backend, timeout=120)
    assert check.ok, check.problem


@pytest.mark.slow
@pytest.mark.parametrize("instance_id", MINI_IDS)
def test_mini_task_validates_on_local_backend(instance_id: str, local_backend) -> None:
    suite = load_suite("mini")
    check = validate_task(suite, suite.select([instance_id])[0], local_backend, timeout=120)
    assert check.ok, check.problem
