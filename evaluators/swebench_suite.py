"""SWE-bench (Verified, Lite, or any instance file) as a suite.

Instances come from a local `.json` (list, or mapping of id to instance), `.jsonl` or
`.parquet` file, or from a Hugging Face dataset name (loaded lazily through swebench,
which needs the network).

Grading: instances in swebench 5's schema carry their own `eval_script`, `image`,
`log_parser` and `eval_type`; hgm builds the TestSpec with swebench's
`make_test_spec`. Older instances (no `eval_script`) get a generic script: restore
the files the test patch touches, apply the test patch, run pytest -rA on them.

Environments: when the instance's swebench image exists in the local Docker engine
(pulled or built where Docker Hub answers), the agent and the grader run in it and
the repository is the one the image holds at /testbed. Otherwise hgm uses hgm-base
plus the repository from a local mirror (`repos_dir`, or $HGM_SWEBENCH_REPOS:
`<owner>__<name>.bundle`, `<name>.bundle` or a git checkout directory); real
SWE-bench repositories also need their Python dependencies there, which only their
images provide. Offline (here), what is covered is loading, spec and eval-script
building, and grading recorded logs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any, Iterable

from sandbox.api import BASE_IMAGE, SandboxError, Session

from evaluators.repos import GIT_ENV, RepoError, put_repo, snapshot
from evaluators.suite import TESTBED, GradingEnv, Suite, SuiteError
from evaluators.task import Task, TaskError, parse_task

ALIASES = {
    "full": "SWE-bench/SWE-bench",
    "swe-bench": "SWE-bench/SWE-bench",
    "lite": "SWE-bench/SWE-bench_Lite",
    "verified": "SWE-bench/SWE-bench_Verified",
}
DIFF_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.M)


def read_instances(path: Path) -> list[dict[str, Any]]:
    """Raw instance dicts from a .json, .jsonl or .parquet file (errors name the line)."""
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise TaskError(f"{path.name} line {number}: not valid JSON ({exc.msg})") from None
        return rows
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise TaskError(f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(data, dict):
            data = list(data.values())
        if not isinstance(data, list):
            raise TaskError(f"{path.name}: expected a list of instances")
        return data
    if path.suffix == ".parquet":
        import pandas

        return pandas.read_parquet(path).to_dict("records")
    raise SuiteError(f"{path}: instance files must be .json, .jsonl or .parquet")


def files_in_patch(test_patch: str) -> list[str]:
    """The files a test patch touches (b/ side), in order."""
    return list(dict.fromkeys(b for _, b in DIFF_HEADER.findall(test_patch)))


def generic_eval_script(task: Task) -> str:
    """An eval script for an instance without one (pytest -rA on the test patch's files)."""
    files = " ".join(shlex.quote(f) for f in files_in_patch(task.test_patch))
    base = shlex.quote(task.base_commit)
    delimiter = "EOF_HGM_TEST_PATCH"
    return "\n".join([
        "#!/bin/bash",
        "set -uxo pipefail",
        'cd "${HGM_TESTBED:-/testbed}"',
        f"git checkout {base} -- {files}" if files else ":",
        f"git apply --verbose - <<'{delimiter}'",
        task.test_patch.rstrip("\n"),
        delimiter,
        "echo '>>>>> Start Test Output'",
        # make_test_spec records the exit status of the line before the end marker
        f'"${{HGM_PYTHON:-python3}}" -m pytest -rA -p no:cacheprovider {files}',
        "echo '>>>>> End Test Output'",
        f"git checkout {base} -- {files}" if files else ":",
    ]) + "\n"


def parse_instances(rows: Iterable[Any], where: str) -> list[Task]:
    tasks = []
    for number, row in enumerate(rows, 1):
        label = row.get("instance_id") if isinstance(row, dict) and row.get("instance_id") else f"instance {number}"
        tasks.append(parse_task(row, f"{where}: {label}"))
    ids = [t.instance_id for t in tasks]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise TaskError(f"{where}: instance_id {duplicates[0]} appears more than once")
    return tasks


class SWEBenchSuite(Suite):
    """SWE-bench instances from a file or a Hugging Face dataset."""

    kind = "swebench"

    def __init__(
        self,
        name: str,
        tasks: list[Task],
        repos_dir: Path | None = None,
        base_image: str = BASE_IMAGE,
        cache: Path | None = None,
    ) -> None:
        self.name = name
        self._tasks = tasks
        env_repos = os.environ.get("HGM_SWEBENCH_REPOS")
        self.repos_dir = Path(repos_dir) if repos_dir else (Path(env_repos) if env_repos else None)
        self.base_image = base_image
        self.cache = cache
        self._local_images: dict[str, bool] = {}

    @classmethod
    def from_file(cls, path: Path, **options: Any) -> "SWEBenchSuite":
        path = Path(path)
        return cls(path.stem, parse_instances(read_instances(path), path.name), **options)

    @classmethod
    def from_dataset(cls, name: str, split: str = "test", **options: Any) -> "SWEBenchSuite":
        """Load a Hugging Face dataset through swebench (needs the network)."""
        full = ALIASES.get(name.lower(), name)
        try:
            from swebench.harness.utils import load_swebench_dataset

            rows = load_swebench_dataset(full, split)
        except Exception as exc:  # noqa: BLE001 - datasets raises many kinds when offline
            first = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
            raise SuiteError(
                f"cannot load {full} ({split}) from Hugging Face: {first}; "
                "offline, download it elsewhere and give the .json/.jsonl/.parquet file"
            ) from None
        return cls(full.split("/")[-1], parse_instances(rows, full), **options)

    def tasks(self) -> list[Task]:
        return list(self._tasks)

    # -- environment -------------------------------------------------------------------

    def _has_local_image(self, image: str) -> bool:
        if not image:
            return False
        if image not in self._local_images:
            try:
                from sandbox.images import image_exists

                self._local_images[image] = image_exists(image)
            except Exception:  # noqa: BLE001 - no engine: no image
                self._local_images[image] = False
        return self._local_images[image]

    def image(self, task: Task) -> str:
        return task.image if self._has_local_image(task.image) else self.base_image

    def repo_source(self, task: Task) -> Path:
        owner, _, name = task.repo.rpartition("/")
        if self.repos_dir is not None:
            for candidate in (f"{owner}__{name}.bundle", f"{name}.bundle", f"{owner}__{name}", name):
                if (self.repos_dir / candidate).exists():
                    return self.repos_dir / candidate
        raise RepoError(
            f"{task.instance_id}: no local mirror of {task.repo} and no swebench image {task.image or '(none named)'}; "
            f"put {owner}__{name}.bundle in a directory given as repos_dir or $HGM_SWEBENCH_REPOS"
        )

    def prepare(self, session: Session, task: Task, dest: str = TESTBED) -> str:
        if self.image(task) != self.base_image:
            # the swebench image already holds the repository at /testbed, at base_commit
            check = session.exec(f"git -C {TESTBED} rev-parse HEAD", timeout=60, env=GIT_ENV)
            if not check.ok:
                raise SandboxError(f"image {task.image} has no repository at {TESTBED}")
            return TESTBED
        return put_repo(session, snapshot(self.repo_source(task), task.base_commit, self.cache), dest)

    def test_spec(self, task: Task) -> Any:
        """swebench's TestSpec (`make_test_spec`) with the instance's eval script, or a generic one."""
        from swebench.harness.utils import make_test_spec

        script = task.eval_script if task.eval_script.strip() else generic_eval_script(task)
        return make_test_spec({**task.instance(), "eval_script": script})

    def grading_env(self, task: Task) -> GradingEnv:
        return GradingEnv(image=self.image(task), eval_script=self.test_spec(task).eval_script, log_parser=task.log_parser)


__all__ = ["SWEBenchSuite", "generic_eval_script", "read_instances", "files_in_patch"]
