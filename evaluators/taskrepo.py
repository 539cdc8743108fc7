"""Suites in swebench's own task-repo layout (the bundled mini suite and custom suites).

Layout (swebench 5, `swebench.task.repo`)::

    sweb.yaml                  datasets and splits (optional for hgm)
    tasks/<instance_id>/       task.yaml, tests.json, problem_statement.md, hints.md?,
                               gold.patch, test.patch, eval.sh, Dockerfile
    repos/<name>.bundle        hgm extension: the repository, as a git bundle
                               (or repos/<name>/ as a git repository directory)

A task's `repo: owner/name` is found as `repos/<name>.bundle`,
`repos/<owner>__<name>.bundle`, `repos/<name>/` or `repos/<owner>__<name>/`.

The Dockerfile is NOT built: swebench's Dockerfiles start FROM images on Docker Hub
and clone from GitHub, neither of which answers here. hgm builds the environment
itself instead: `hgm-base:latest` (Debian python3 + pytest + git) with the
repository put at /testbed from the local bundle, plus, when task.yaml lists
`hgm_requirements`, those packages installed offline from hgm's wheel cache
(`evaluators.environments`). The eval script runs as the task repo wrote it, with
`HGM_TESTBED`/`HGM_PYTHON` set and `/testbed` rewritten where the backend keeps the
repository elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import yaml

from sandbox.api import BASE_IMAGE, Session

from evaluators.repos import RepoError, put_repo, snapshot
from evaluators.suite import TESTBED, GradingEnv, Suite, SuiteError
from evaluators.task import Task, TaskError, parse_task

TASK_FILE = "task.yaml"
TESTS_FILE = "tests.json"
AS_FILE = {
    "patch": "gold.patch",
    "test_patch": "test.patch",
    "eval_script": "eval.sh",
    "problem_statement": "problem_statement.md",
}
OPTIONAL_FILE = {"hints_text": "hints.md"}

ImageBuilder = Callable[[list[str]], str]


def load_task_dir(task_dir: Path) -> Task:
    """One `tasks/<id>/` directory as a validated `Task` (errors name file and field)."""
    where = f"tasks/{task_dir.name}"
    missing = [n for n in (TASK_FILE, TESTS_FILE, *AS_FILE.values()) if not (task_dir / n).is_file()]
    if missing:
        raise TaskError(f"{where}: missing file {', '.join(missing)}")
    try:
        meta = yaml.safe_load((task_dir / TASK_FILE).read_text())
    except yaml.YAMLError as exc:
        raise TaskError(f"{where}/{TASK_FILE}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(meta, dict):
        raise TaskError(f"{where}/{TASK_FILE}: expected a mapping of fields")
    try:
        tests = json.loads((task_dir / TESTS_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise TaskError(f"{where}/{TESTS_FILE}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(tests, dict):
        raise TaskError(f"{where}/{TESTS_FILE}: expected an object with FAIL_TO_PASS and PASS_TO_PASS")
    data: dict[str, Any] = dict(meta)
    for column, name in AS_FILE.items():
        with open(task_dir / name, newline="") as fh:  # keep CRLF inside patches verbatim
            data[column] = fh.read()
    for column, name in OPTIONAL_FILE.items():
        path = task_dir / name
        data[column] = path.read_text() if path.is_file() else ""
    data.update(tests)
    task = parse_task(data, where)
    if task.instance_id != task_dir.name:
        raise TaskError(f"{where}/{TASK_FILE}: field 'instance_id' is {task.instance_id!r}, not the directory name")
    return task


class TaskRepoSuite(Suite):
    """A directory in swebench's task-repo layout, graded offline by hgm."""

    kind = "task-repo"

    def __init__(
        self,
        path: str | Path,
        cache_dir: Path | None = None,
        base_image: str = BASE_IMAGE,
        image_builder: ImageBuilder | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.cache_dir = cache_dir
        self.base_image = base_image
        self.image_builder = image_builder
        self._tasks: list[Task] | None = None
        if not (self.path / "tasks").is_dir():
            raise SuiteError(f"{self.path} has no tasks/ directory")

    def tasks(self) -> list[Task]:
        if self._tasks is None:
            dirs = sorted(d for d in (self.path / "tasks").iterdir() if (d / TASK_FILE).is_file())
            if not dirs:
                raise SuiteError(f"{self.path}/tasks holds no task directory with a {TASK_FILE}")
            self._tasks = [load_task_dir(d) for d in dirs]
        return list(self._tasks)

    def repo_source(self, task: Task) -> Path:
        """The local git bundle or repository for `task.repo`."""
        owner, _, name = task.repo.rpartition("/")
        flat = f"{owner}__{name}" if owner else name
        candidates = [
            self.path / "repos" / f"{name}.bundle",
            self.path / "repos" / f"{flat}.bundle",
            self.path / "repos" / name,
            self.path / "repos" / flat,
        ]
        for candidate in candidates:
            if candidate.exists():
                return candidate
        raise RepoError(
            f"{task.instance_id}: no local copy of {task.repo}; hgm does not clone from the "
            f"network: put a git bundle at {candidates[0]} (git bundle create FILE --all)"
        )

    def image(self, task: Task) -> str:
        raw = getattr(task, "hgm_requirements", None) or []
        if isinstance(raw, str) or not all(isinstance(r, str) for r in raw):
            raise TaskError(f"tasks/{task.instance_id}: field 'hgm_requirements' must be a list of strings")
        # a requirement naming a path inside the suite (a wheel, a project) is relative to it
        requirements = [str((self.path / r).resolve()) if (self.path / r).exists() else r for r in raw]
        if not requirements:
            return self.base_image
        if self.image_builder is None:
            from evaluators.environments import EnvironmentBuilder

            self.image_builder = EnvironmentBuilder(base_image=self.base_image).build
        return self.image_builder(requirements)

    def prepare(self, session: Session, task: Task, dest: str = TESTBED) -> str:
        return put_repo(session, snapshot(self.repo_source(task), task.base_commit, self.cache_dir), dest)

    def grading_env(self, task: Task) -> GradingEnv:
        from swebench.harness.utils import make_test_spec

        spec = make_test_spec(task.instance())
        return GradingEnv(image=self.image(task), eval_script=spec.eval_script, log_parser=task.log_parser)


__all__ = ["TaskRepoSuite", "load_task_dir"]
