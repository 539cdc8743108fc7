"""Suites in swebench's own task-repo layout (the bundled mini suite and custom suites).

Layout (swebench 5, `swebench.task.repo`)::

    sweb.yaml                  datasets and splits (optional for hgm)
    tasks/<instance_id>/       task.yaml, tests.json, problem_statement.md, hints.md?,
                               gold.patch, test.patch, eval.sh, Dockerfile
    repos/<name>.bundle        hgm extension: the repository, as a git bundle
                               (or repos/<name>/ as a git repository directory)

Environments (`ensure_environment`): a task's Dockerfile is built with the task directory
as build context, as swebench does (`evaluators.dockerfiles`: classic builder, cached by
content), whenever its base images are in the local engine or can be pulled; hgm adds its
uid-1000 testbed layer (`evaluators.testbed`). When the built image has no repository at
/testbed, or the Dockerfile cannot be built (base image absent, build failed, no Docker),
hgm uses `hgm-base:latest` (Debian python3 + pytest + git) with the repository put at
/testbed from a local copy: `repos/<name>.bundle`, `repos/<owner>__<name>.bundle`,
`repos/<name>/`, `repos/<owner>__<name>/`, or a git bundle the Dockerfile COPYs from the
task directory. `Environment.how` says which way each task went ("built" or "fallback").
When task.yaml lists `hgm_requirements`, those packages are installed offline from hgm's
wheel cache on top of the image (`evaluators.environments`). The eval script runs as the
task repo wrote it, with `HGM_TESTBED`/`HGM_PYTHON` set and `/testbed` rewritten where
the backend keeps the repository elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import yaml

from sandbox.api import BASE_IMAGE, Backend, SandboxError, Session
from sandbox.image_cache import ImageCache, default_max_bytes

from evaluators.repos import RepoError, snapshot
from evaluators.suite import TESTBED, Environment, GradingEnv, OnEvent, Suite, SuiteError
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
        self._pinned: set[str] = set()
        if not (self.path / "tasks").is_dir():
            raise SuiteError(f"{self.path} has no tasks/ directory")

    def tasks(self) -> list[Task]:
        if self._tasks is None:
            dirs = sorted(d for d in (self.path / "tasks").iterdir() if (d / TASK_FILE).is_file())
            if not dirs:
                raise SuiteError(f"{self.path}/tasks holds no task directory with a {TASK_FILE}")
            self._tasks = [load_task_dir(d) for d in dirs]
        return list(self._tasks)

    def task_dir(self, task: Task) -> Path:
        return self.path / "tasks" / task.instance_id

    def repo_source(self, task: Task) -> Path:
        """The local git bundle or repository for `task.repo` (repos/, or a bundle the Dockerfile COPYs)."""
        from evaluators.dockerfiles import bundle_sources

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
        dockerfile = self.task_dir(task) / "Dockerfile"
        if dockerfile.is_file():
            bundles = bundle_sources(self.task_dir(task), dockerfile.read_text())
            if bundles:
                return bundles[0]
        raise RepoError(
            f"{task.instance_id}: no local copy of {task.repo}; hgm does not clone from the "
            f"network: put a git bundle at {candidates[0]} (git bundle create FILE --all), "
            f"or have tasks/{task.instance_id}/Dockerfile COPY one from the task directory"
        )

    def requirements(self, task: Task) -> list[str]:
        """task.yaml's `hgm_requirements`, with paths inside the suite made absolute."""
        raw = getattr(task, "hgm_requirements", None) or []
        if isinstance(raw, str) or not all(isinstance(r, str) for r in raw):
            raise TaskError(f"tasks/{task.instance_id}: field 'hgm_requirements' must be a list of strings")
        return [str((self.path / r).resolve()) if (self.path / r).exists() else r for r in raw]

    def _with_requirements(self, task: Task, image: str) -> str:
        requirements = self.requirements(task)
        if not requirements:
            return image
        if image == self.base_image and self.image_builder is not None:
            return self.image_builder(requirements)
        from evaluators.environments import EnvironmentBuilder

        return EnvironmentBuilder(base_image=image).build(requirements)

    def image(self, task: Task) -> str:
        return self.ensure_environment(task).image

    def _make_environment(self, task: Task, backend: Backend | None, on_event: OnEvent | None) -> Environment:
        from evaluators.testbed import runs_images

        if not runs_images(backend):
            return self._fallback(task, "this backend runs no images")
        if not (self.task_dir(task) / "Dockerfile").is_file():
            return self._fallback(task, "the task has no Dockerfile")
        from evaluators.dockerfiles import build_task_image
        from evaluators.testbed import testbed_environment
        from sandbox.images import docker_client

        try:
            client = docker_client(timeout=600)
        except SandboxError as exc:
            return self._fallback(task, str(exc))
        try:
            cache = ImageCache()
            try:
                built = build_task_image(self.task_dir(task), client, cache, on_event)
            except SandboxError as exc:
                return self._fallback(task, str(exc).splitlines()[0])
            env = testbed_environment(built, "built", f"from tasks/{task.instance_id}/Dockerfile", backend, client,
                                      cache, on_event, task.instance_id)
            self._pinned.update({built, env.image})
            if cache.added:  # only a new image can push hgm's images over the cap
                cache.prune(client, default_max_bytes(), keep=self._pinned)
        finally:
            client.close()
        if not env.repo_in_image:
            self.repo_source(task)  # raises when there is no local copy to put at /testbed
        image = self._with_requirements(task, env.image)
        return Environment(image, env.how, env.detail, env.env, env.python, env.repo_in_image)

    def _fallback(self, task: Task, why: str) -> Environment:
        return Environment(self._with_requirements(task, self.base_image), how="fallback", detail=why)

    def prepare(self, session: Session, task: Task, dest: str = TESTBED) -> str:
        from evaluators.testbed import place_repo

        return place_repo(session, self.ensure_environment(task), dest,
                          lambda: snapshot(self.repo_source(task), task.base_commit, self.cache_dir))

    def grading_env(self, task: Task) -> GradingEnv:
        from swebench.harness.utils import make_test_spec

        env = self.ensure_environment(task)
        spec = make_test_spec(task.instance())
        return GradingEnv(image=env.image, eval_script=spec.eval_script, log_parser=task.log_parser, env=env.env)


__all__ = ["TaskRepoSuite", "load_task_dir"]
