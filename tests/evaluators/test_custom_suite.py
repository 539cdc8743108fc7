"""A custom suite in swebench's own task-repo layout: `swebench dataset check` accepts it, hgm runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from evaluators.grading import grade
from evaluators.outcomes import Outcome
from evaluators.suite import load_suite
from evaluators.taskrepo import TaskRepoSuite
from evaluators.validate import validate_suite
from fakesandbox import FakeBackend
from test_grading import HANG


def test_swebench_dataset_check_accepts_the_fixture(calc_suite_path: Path) -> None:
    from swebench.task.checks import check_task_repo, errors

    assert errors(check_task_repo(calc_suite_path)) == []
    cli = Path(sys.executable).with_name("swebench")
    done = subprocess.run([str(cli), "dataset", "check", str(calc_suite_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hgm_loads_it_with_swebench_s_own_reader(calc_suite_path: Path) -> None:
    from swebench.task.repo import load_task_repo

    theirs = {i["instance_id"]: i for i in load_task_repo(calc_suite_path)}
    ours = {t.instance_id: t for t in load_suite(calc_suite_path).tasks()}
    assert set(ours) == set(theirs) == {"calc-1", "calc-2"}
    for task_id, instance in theirs.items():
        for key in ("base_commit", "patch", "test_patch", "FAIL_TO_PASS", "PASS_TO_PASS", "eval_script", "image"):
            assert getattr(ours[task_id], key) == instance[key], key


def test_validates_and_runs_offline_despite_unpullable_image(calc_suite_path: Path) -> None:
    suite = load_suite(calc_suite_path)
    assert isinstance(suite, TaskRepoSuite)
    assert "FROM swebench/" in (calc_suite_path / "tasks" / "calc-1" / "Dockerfile").read_text()
    assert suite.image(suite.tasks()[0]) == "hgm-base:latest"  # hgm builds its own environment
    checks = validate_suite(suite, FakeBackend(), workers=2)
    assert [c.ok for c in checks] == [True, True], [c.problem for c in checks]


@pytest.mark.docker
def test_outcomes_on_docker(calc_suite_path: Path, docker_backend) -> None:
    """The must-show outcomes against real containers: resolved, unresolved, patch_failed, timeout."""
    suite = load_suite(calc_suite_path)
    task = suite.tasks()[0]
    assert grade(task.patch, task, suite, docker_backend).outcome is Outcome.RESOLVED
    stale = task.patch.replace("-    return a - b", "-    return a * b")
    assert grade(stale, task, suite, docker_backend).outcome is Outcome.PATCH_FAILED
    hang = grade(HANG, task, suite, docker_backend, timeout=5)
    assert hang.outcome is Outcome.TIMEOUT and hang.duration < 60


@pytest.mark.docker
def test_test_deleting_agent_is_unresolved_on_docker(calc_suite_path: Path, docker_backend) -> None:
    from test_grading import _agent_patch

    suite = load_suite(calc_suite_path)
    task = suite.tasks()[0]
    patch = _agent_patch(suite, task, "rm -rf tests && printf 'def test_add():\\n    pass\\n' > test_fake.py")
    result = grade(patch, task, suite, docker_backend)
    assert result.outcome is Outcome.UNRESOLVED, result.log
