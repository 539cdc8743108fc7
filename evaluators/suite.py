"""The suite interface: a set of tasks that knows how to set up and grade each one.

Every kind of suite (task-repo layout, SWE-bench instance files, Polyglot) is a
`Suite`. Callers use five things:

- `tasks()` the tasks, in the SWE-bench instance schema (`Task`);
- `ensure_environment(task, backend, on_event)` obtains what the task's sandboxes start
  from (pulls or builds an image when needed, says which way it went); idempotent;
- `prepare(session, task, dest)` puts the pristine repository at the task's base
  commit into a sandbox (no test patch, no eval script: safe for the agent);
- `grading_env(task)` the image, eval script and parser grading needs;
- `skip_reason(task)` why a task cannot run on this machine, or None.
"""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from sandbox.api import BASE_IMAGE, Backend, Session

from evaluators.task import Task

TESTBED = "/testbed"


class SuiteError(ValueError):
    """A suite cannot be found or loaded; the message says what to do."""


@dataclass(frozen=True)
class GradingEnv:
    """What a fresh grading sandbox needs for one task."""

    image: str
    eval_script: str  # complete bash script (swebench TestSpec.eval_script)
    log_parser: str = "parse_log_pytest"
    testbed: str = TESTBED
    env: Mapping[str, str] = field(default_factory=dict)  # the task environment's activation


@dataclass(frozen=True)
class Environment:
    """What a task's sandboxes (the agent's and the grader's) start from.

    `how`: "image" (the task's image was already here), "pulled", "built" (its
    Dockerfile), "fallback" (hgm-base plus the repository from a local copy; `detail`
    says why) or "base" (suites that always use hgm-base). `env` is the task's
    environment activated as swebench does (`conda activate testbed`: PATH, CONDA_*):
    give it to every command of the agent (it wins over hgm's own PATH) and to grading.
    `python` is an interpreter outside that environment to launch the agent with
    (None: the backend's default); `repo_in_image` says /testbed comes with the image.
    """

    image: str
    how: str
    detail: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    python: str | None = None
    repo_in_image: bool = False

    def to_dict(self) -> dict[str, object]:
        return {"image": self.image, "how": self.how, "detail": self.detail, "env": dict(self.env),
                "python": self.python, "repo_in_image": self.repo_in_image}

    def describe(self) -> str:
        """One line for tables: 'built hgm-testbed:ab12…', or 'fallback hgm-base:latest: why'."""
        return f"{self.how} {self.image}" + (f": {self.detail}" if self.how == "fallback" and self.detail else "")


@dataclass(frozen=True)
class EnvEvent:
    """Progress of `ensure_environment`: a message, and bytes done/total while pulling."""

    instance_id: str
    message: str
    done: int | None = None
    total: int | None = None


OnEvent = Callable[[EnvEvent], None]


class Suite(abc.ABC):
    """A set of tasks plus the knowledge to set up and grade each one."""

    name: str = "suite"
    kind: str = "suite"

    @abc.abstractmethod
    def tasks(self) -> list[Task]:
        """All tasks, in a stable order."""

    @abc.abstractmethod
    def prepare(self, session: Session, task: Task, dest: str = TESTBED) -> str:
        """Put the task's pristine repository at `dest` in `session`; return `dest`."""

    @abc.abstractmethod
    def grading_env(self, task: Task) -> GradingEnv:
        """Image, eval script and log parser for grading `task`."""

    def image(self, task: Task) -> str:
        """The image both the agent's and the grader's sandboxes start from."""
        return BASE_IMAGE

    def ensure_environment(self, task: Task, backend: Backend | None = None, on_event: OnEvent | None = None) -> Environment:
        """Obtain `task`'s environment once per suite object (pull, build or fall back) and say how.

        Thread-safe; a failure (RepoError, SandboxError: nothing can provide the task)
        is raised again on later calls without retrying. `backend` defaults to the one
        given to `use_backend`.
        """
        memo: dict[str, Environment | Exception] = self.__dict__.setdefault("_environments", {})
        locks: dict[str, threading.Lock] = self.__dict__.setdefault("_environment_locks", {})
        backend = backend or self.__dict__.get("_backend")
        if backend is None and task.instance_id not in memo:
            # no backend known yet: answer without remembering (a later call may know it)
            return self._make_environment(task, None, on_event)
        lock = locks.setdefault(task.instance_id, threading.Lock())
        with lock:
            if task.instance_id not in memo:
                try:
                    memo[task.instance_id] = self._make_environment(task, backend, on_event)
                except Exception as exc:  # noqa: BLE001 - remembered, raised to every caller
                    memo[task.instance_id] = exc
            found = memo[task.instance_id]
        if isinstance(found, Exception):
            raise found
        return found

    def _make_environment(self, task: Task, backend: Backend | None, on_event: OnEvent | None) -> Environment:
        """How this kind of suite obtains an environment (called once per task)."""
        return Environment(self.image(task), how="base")

    def skip_reason(self, task: Task) -> str | None:
        """Why `task` cannot run here (e.g. a missing toolchain), or None."""
        return None

    def use_backend(self, backend: Backend) -> None:
        """Tell the suite which sandbox backend will run its tasks (probes, environments)."""
        self.__dict__["_backend"] = backend

    def gold_patch(self, task: Task) -> str:
        """The reference solution (what `hgm suite validate` expects to resolve)."""
        return task.patch

    def select(self, ids: Sequence[str] | None = None) -> list[Task]:
        """The tasks named by `ids` (all when None); unknown ids are an error."""
        tasks = self.tasks()
        if not ids:
            return tasks
        by_id = {t.instance_id: t for t in tasks}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise SuiteError(f"suite {self.name} has no task {', '.join(missing)}")
        return [by_id[i] for i in ids]


BUNDLED = Path(__file__).parent / "suites"


def bundled_suites() -> list[str]:
    """Names of the suites shipped with hgm (`hgm suite validate mini`)."""
    if not BUNDLED.is_dir():
        return []
    return sorted(p.name for p in BUNDLED.iterdir() if (p / "tasks").is_dir())


def load_suite(ref: str | Path, **options: object) -> Suite:
    """Open a suite by bundled name or path, detecting its kind.

    - a bundled name (`mini`) or a directory with `tasks/`: task-repo layout;
    - a directory with `<language>/exercises/practice/`: Aider Polyglot checkout;
    - a `.json`/`.jsonl`/`.parquet` file: SWE-bench instances;
    - `swebench:NAME` (or `verified`, `lite`, `SWE-bench/...`): a Hugging Face dataset.
    """
    text = str(ref)
    path = Path(text).expanduser()
    if not path.exists() and (BUNDLED / text / "tasks").is_dir():
        path = BUNDLED / text
    if path.is_dir():
        if (path / "tasks").is_dir():
            from evaluators.taskrepo import TaskRepoSuite

            return TaskRepoSuite(path, **options)  # type: ignore[arg-type]
        if any(path.glob("*/exercises/practice")):
            from evaluators.polyglot import PolyglotSuite

            return PolyglotSuite(path, **options)  # type: ignore[arg-type]
        raise SuiteError(
            f"{path} is neither a task repo (no tasks/ directory) nor a Polyglot checkout "
            "(no <language>/exercises/practice/)"
        )
    if path.is_file():
        if path.suffix in (".json", ".jsonl", ".parquet"):
            from evaluators.swebench_suite import SWEBenchSuite

            return SWEBenchSuite.from_file(path, **options)  # type: ignore[arg-type]
        raise SuiteError(f"{path}: a suite file must be .json, .jsonl or .parquet of SWE-bench instances")
    name = text.removeprefix("swebench:")
    if text.startswith("swebench:") or "/" in text or name.lower() in {"lite", "verified", "full"}:
        from evaluators.swebench_suite import SWEBenchSuite

        return SWEBenchSuite.from_dataset(name, **options)  # type: ignore[arg-type]
    known = ", ".join(bundled_suites()) or "none installed"
    raise SuiteError(f"no suite {text!r}: give a path, a bundled name ({known}) or swebench:NAME")


__all__ = ["EnvEvent", "Environment", "GradingEnv", "OnEvent", "Suite", "SuiteError", "TESTBED", "bundled_suites",
           "load_suite"]
