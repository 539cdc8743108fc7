"""Task-repo suites whose Dockerfiles build /testbed from a `repo.bundle` in the task directory."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evaluators.dockerfiles import base_images, bundle_sources, context_digest
from evaluators.taskrepo import TaskRepoSuite
from hgm.cli import build_app

DOCKERFILE = """\
# as a swebench task repo writes it: the build context is this task's directory
ARG BASE={base}
FROM ${{BASE}} AS env
USER root
COPY repo.bundle /tmp/repo.bundle
RUN git clone -q /tmp/repo.bundle /testbed \\
 && git -C /testbed checkout -q {commit} \\
 && rm /tmp/repo.bundle
WORKDIR /testbed
"""


def bundled_layout(calc_suite_path: Path, dest: Path, base: str) -> Path:
    """The calc suite with no repos/: each task's Dockerfile COPYs repo.bundle from its own directory."""
    shutil.copytree(calc_suite_path, dest)
    bundle = dest / "repos" / "calc.bundle"
    suite = TaskRepoSuite(dest)
    for task in suite.tasks():
        task_dir = dest / "tasks" / task.instance_id
        shutil.copy(bundle, task_dir / "repo.bundle")
        (task_dir / "Dockerfile").write_text(DOCKERFILE.format(base=base, commit=task.base_commit))
    shutil.rmtree(dest / "repos")
    return dest


def test_dockerfile_reading(calc_suite_path: Path, tmp_path: Path) -> None:
    suite_dir = bundled_layout(calc_suite_path, tmp_path / "suite", "example/base:1")
    task_dir = suite_dir / "tasks" / "calc-1"
    text = (task_dir / "Dockerfile").read_text()
    assert base_images(text) == ["example/base:1"]
    assert base_images("FROM a AS build\nFROM build\nFROM scratch\nFROM --platform=linux/amd64 b\n") == ["a", "b"]
    assert bundle_sources(task_dir, text) == [(task_dir / "repo.bundle").resolve()]
    before = context_digest(task_dir, text, ["sha256:1"])
    assert context_digest(task_dir, text, ["sha256:2"]) != before  # a new base image rebuilds
    (task_dir / "eval.sh").write_text((task_dir / "eval.sh").read_text() + "\n# changed\n")
    assert context_digest(task_dir, text, ["sha256:1"]) != before  # so does any context file
    # without Docker the repository is found where the Dockerfile takes it from
    suite = TaskRepoSuite(suite_dir)
    assert suite.repo_source(suite.tasks()[0]) == (task_dir / "repo.bundle").resolve()


@pytest.mark.docker
def test_validate_builds_the_dockerfiles_then_falls_back(calc_suite_path: Path, tmp_path: Path, docker_backend) -> None:
    import docker

    from sandbox.image_cache import ImageCache

    client = docker.from_env()
    base = f"hgm-test-taskbase:{uuid.uuid4().hex[:10]}"
    client.images.get("hgm-base:latest").tag(base)
    suite_dir = bundled_layout(calc_suite_path, tmp_path / "suite", base)
    try:
        built = CliRunner().invoke(build_app(), ["suite", "validate", str(suite_dir), "--backend", "docker", "--json"])
        assert built.exit_code == 0, built.output
        data = json.loads(built.stdout)
        for task in data["tasks"]:
            assert task["gold"]["outcome"] == "resolved" and task["empty"]["outcome"] == "unresolved"
            env = task["environment"]
            assert env["how"] == "built" and env["repo_in_image"] and env["image"].startswith("hgm-testbed:")
            assert env["detail"] == f"from tasks/{task['instance_id']}/Dockerfile"
        # the uid-1000 layer sits on an image built from the task's own Dockerfile
        layer = client.images.get(data["tasks"][0]["environment"]["image"])
        assert layer.attrs["Config"]["User"] == "1000:1000"
        assert layer.labels["hgm.source"].startswith("hgm-task:")

        client.images.remove(base)  # the base image is gone: no build, the fallback finds repo.bundle
        fallback = CliRunner().invoke(build_app(), ["suite", "validate", str(suite_dir), "--backend", "docker"],
                                      env={"COLUMNS": "300"})
        assert fallback.exit_code == 0, fallback.output
        said = [line for line in fallback.stdout.splitlines() if line.startswith("environment ")]
        assert len(said) == 1 and said[0].startswith(f"environment fallback hgm-base:latest: base image {base}")
        assert said[0].endswith(": calc-1, calc-2")
        again = CliRunner().invoke(build_app(), ["suite", "validate", str(suite_dir), "--backend", "docker", "--json"])
        for task in json.loads(again.stdout)["tasks"]:
            assert task["gold"]["outcome"] == "resolved" and task["empty"]["outcome"] == "unresolved"
            env = task["environment"]
            assert env["how"] == "fallback" and env["image"] == "hgm-base:latest" and base in env["detail"]
    finally:
        if any(base in t for t in client.images.get("hgm-base:latest").tags):
            client.images.remove(base)
        for entry in ImageCache().entries().values():  # what this test built (its own cache dir)
            for ref in entry["refs"]:
                try:
                    client.images.remove(ref)
                except docker.errors.APIError:
                    pass
