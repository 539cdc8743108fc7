"""SWE-bench (Verified, Lite, or any instance file) as a suite.

Instances come from a local `.json` (list, or mapping of id to instance), `.jsonl` or
`.parquet` file, or from a Hugging Face dataset name (loaded lazily through swebench,
which needs the network).

Grading: instances in swebench 5's schema carry their own `eval_script`, `image`,
`log_parser` and `eval_type`; hgm builds the TestSpec with swebench's
`make_test_spec`. Older instances (no `eval_script`) get a generic script: restore
the files the test patch touches, apply the test patch, run pytest -rA on them.

Environments (`ensure_environment`, done lazily or ahead by `hgm suite prepare`): the
instance's swebench image, named as swebench names it (`swebench.image_builder`'s
ImageSpec: `<namespace>/sweb.eval.x86_64.<id>:latest`, lowercase, `__` -> `_1776_`; an
instance's own `image` column wins unless a namespace is given), is used when the local
engine has it, else pulled (from `registry` when given, then also tagged with its
canonical name), else built from the instance's Dockerfile in a swebench task repo
(`build` + `task_repo`). hgm adds its uid-1000 testbed layer and reads the conda
activation (`evaluators.testbed`). Pulled and built images are recorded in the image
cache and kept under its disk cap. Where no image can be had, hgm-base plus the
repository from a local mirror (`repos_dir`, or $HGM_SWEBENCH_REPOS:
`<owner>__<name>.bundle`, `<name>.bundle` or a git checkout directory); real SWE-bench
repositories also need their dependencies there, which only their images provide.
Settings: `registry` ($HGM_SWEBENCH_REGISTRY), `namespace` ($HGM_SWEBENCH_NAMESPACE).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any, Iterable

from sandbox.api import BASE_IMAGE, Backend, SandboxError, Session
from sandbox.image_cache import ImageCache, default_max_bytes

from evaluators.repos import RepoError, snapshot
from evaluators.suite import TESTBED, EnvEvent, Environment, GradingEnv, OnEvent, Suite, SuiteError
from evaluators.task import Task, TaskError, parse_task

ALIASES = {
    "full": "SWE-bench/SWE-bench",
    "swe-bench": "SWE-bench/SWE-bench",
    "lite": "SWE-bench/SWE-bench_Lite",
    "verified": "SWE-bench/SWE-bench_Verified",
}
DIFF_HEADER = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.M)
DEFAULT_NAMESPACE = "swebench"


def instance_image_name(instance_id: str, namespace: str = DEFAULT_NAMESPACE, tag: str = "latest") -> str:
    """swebench's name for an instance image (its own ImageSpec naming rules)."""
    from swebench.image_builder.image_spec import ImageSpec

    return ImageSpec(instance_id=instance_id, dockerfile="(prebuilt)", namespace=namespace, tag=tag).name


def with_registry(ref: str, registry: str | None) -> str:
    """`ref` as served by `registry` (HOST[:PORT]); a registry host already in `ref` is replaced."""
    if not registry:
        return ref
    first, sep, rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        ref = rest
    return f"{registry.strip().rstrip('/')}/{ref}"


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
        registry: str | None = None,
        namespace: str | None = None,
        pull: bool = True,
        build: bool = False,
        task_repo: Path | None = None,
    ) -> None:
        self.name = name
        self._tasks = tasks
        env_repos = os.environ.get("HGM_SWEBENCH_REPOS")
        self.repos_dir = Path(repos_dir) if repos_dir else (Path(env_repos) if env_repos else None)
        self.base_image = base_image
        self.cache = cache
        self.registry = registry or os.environ.get("HGM_SWEBENCH_REGISTRY") or None
        self.namespace = namespace or os.environ.get("HGM_SWEBENCH_NAMESPACE") or None
        self.pull = pull
        self.build = build
        self.task_repo = Path(task_repo) if task_repo else None
        self._pinned: set[str] = set()

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

    def image_name(self, task: Task) -> str:
        """The instance's swebench image name (without a registry)."""
        if self.namespace is None and task.image:
            return task.image
        return instance_image_name(task.instance_id, self.namespace or DEFAULT_NAMESPACE)

    def image(self, task: Task) -> str:
        return self.ensure_environment(task).image

    def _make_environment(self, task: Task, backend: Backend | None, on_event: OnEvent | None) -> Environment:
        from evaluators.testbed import runs_images, testbed_environment
        from sandbox.images import docker_client

        if not runs_images(backend):
            return self._fallback(task, "this backend runs no images")
        client = docker_client(timeout=600)
        try:
            cache = ImageCache()
            source, how, detail = self._source_image(task, client, cache, on_event)
            if source is None:
                return self._fallback(task, detail)
            env = testbed_environment(source, how, detail, backend, client, cache, on_event, task.instance_id)
            self._pinned.update({source, env.image})
            if how in ("pulled", "built"):
                cache.prune(client, default_max_bytes(), keep=self._pinned)
            return env
        finally:
            client.close()

    def _source_image(
        self, task: Task, client, cache: ImageCache, on_event: OnEvent | None,
    ) -> tuple[str | None, str, str]:
        """(local image name, how, detail), or (None, "", why no image can be had)."""
        from sandbox.images import image_id, pull_image, tag_image

        canonical = self.image_name(task)
        remote = with_registry(canonical, self.registry)
        for ref in dict.fromkeys((canonical, remote)):
            found = image_id(ref, client)
            if found:
                cache.touch(found)
                return ref, "image", ""
        why = f"image {canonical} is not here"
        if self.pull:
            def progress(state) -> None:
                if on_event:
                    on_event(EnvEvent(task.instance_id, f"pulling {remote}", state.done, state.total))

            try:
                found = pull_image(remote, client=client, progress=progress)
                cache.record(found, remote, "pulled")
                if remote != canonical:
                    tag_image(remote, canonical, client)
                    cache.record(found, canonical, "pulled")
                return canonical, "pulled", f"from {remote}"
            except SandboxError as exc:
                why = str(exc)
        if self.build:
            return self._build_image(task, canonical, client, cache, on_event, why)
        return None, "", why

    def _build_image(
        self, task: Task, canonical: str, client, cache: ImageCache, on_event: OnEvent | None, why: str,
    ) -> tuple[str | None, str, str]:
        """Build the instance's Dockerfile from the swebench task repo `task_repo`."""
        from evaluators.dockerfiles import build_task_image

        task_dir = self.task_repo / "tasks" / task.instance_id if self.task_repo else None
        if task_dir is None or not (task_dir / "Dockerfile").is_file():
            where = f"{self.task_repo}/tasks/{task.instance_id}/Dockerfile" if self.task_repo else "a task repo (--task-repo)"
            return None, "", f"{why}; and no Dockerfile to build it from in {where}"
        try:
            build_task_image(task_dir, client, cache, on_event, tag=canonical)
        except SandboxError as exc:
            return None, "", f"{why}; building it failed: {exc}"
        return canonical, "built", f"from {task_dir}/Dockerfile"

    def _fallback(self, task: Task, why: str) -> Environment:
        # the repository comes from a local mirror; `prepare` says so when there is none
        return Environment(self.base_image, how="fallback", detail=why)

    def repo_source(self, task: Task, why: str = "") -> Path:
        owner, _, name = task.repo.rpartition("/")
        if self.repos_dir is not None:
            for candidate in (f"{owner}__{name}.bundle", f"{name}.bundle", f"{owner}__{name}", name):
                if (self.repos_dir / candidate).exists():
                    return self.repos_dir / candidate
        raise RepoError(
            f"{task.instance_id}: {why or 'no swebench image ' + self.image_name(task)}; and no local mirror of "
            f"{task.repo}: run `hgm suite prepare` (with --registry HOST:PORT for a private registry), or put "
            f"{owner}__{name}.bundle in a directory given as repos_dir or $HGM_SWEBENCH_REPOS"
        )

    def prepare(self, session: Session, task: Task, dest: str = TESTBED) -> str:
        from evaluators.testbed import place_repo

        # a swebench image already holds the repository at /testbed, at base_commit
        env = self.ensure_environment(task)
        return place_repo(session, env, dest, lambda: snapshot(self.repo_source(task, env.detail), task.base_commit,
                                                               self.cache))

    def test_spec(self, task: Task) -> Any:
        """swebench's TestSpec (`make_test_spec`) with the instance's eval script, or a generic one."""
        from swebench.harness.utils import make_test_spec

        script = task.eval_script if task.eval_script.strip() else generic_eval_script(task)
        return make_test_spec({**task.instance(), "eval_script": script})

    def grading_env(self, task: Task) -> GradingEnv:
        env = self.ensure_environment(task)
        return GradingEnv(image=env.image, eval_script=self.test_spec(task).eval_script, log_parser=task.log_parser,
                          env=env.env)


__all__ = ["DEFAULT_NAMESPACE", "SWEBenchSuite", "files_in_patch", "generic_eval_script", "instance_image_name",
           "read_instances", "with_registry"]
