"""`hgm sandbox build-base|gc`, image helpers and the auto backend choice against a real engine."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from typer.testing import CliRunner

from hgm.cli import build_app
from sandbox.api import BASE_IMAGE, SandboxSpec

pytestmark = pytest.mark.docker


def run_cli(*args: str):
    return CliRunner().invoke(build_app(), list(args))


def test_build_base_is_fast_when_the_image_exists(docker_backend):
    started = time.monotonic()
    result = run_cli("sandbox", "build-base", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{") :])
    assert data["method"] == "existing" and data["tag"] == BASE_IMAGE
    assert time.monotonic() - started < 5


def test_gc_removes_leftover_containers_of_one_run(docker_backend):
    run_id = f"gc-{uuid.uuid4().hex[:8]}"
    other = docker_backend.open(SandboxSpec(labels={"hgm.run": f"{run_id}-other"}))
    leftovers = [docker_backend.open(SandboxSpec(labels={"hgm.run": run_id})) for _ in range(2)]
    try:
        for box in leftovers:  # forget them, as a killed hgm would
            box._finalizer.detach()
        result = run_cli("sandbox", "gc", "--run", run_id)
        assert result.exit_code == 0, result.output
        assert f"removed 2 sandbox container(s) of run {run_id}" in result.stdout
        names = {c.name for c in docker_backend.client.containers.list(all=True)}
        assert not any(box.name in names for box in leftovers)
        assert other.name in names
    finally:
        other.close()


def test_build_image_from_the_base_with_the_classic_builder(docker_backend):
    from sandbox.images import build_image_from, image_exists

    tag = f"hgm-test-task:{uuid.uuid4().hex[:8]}"
    lines: list[str] = []
    try:
        build_image_from(
            BASE_IMAGE,
            "USER root\nRUN echo baked > /opt/marker && chmod 644 /opt/marker\nUSER 1000:1000\n",
            tag,
            client=docker_backend.client,
            progress=lines.append,
        )
        assert image_exists(tag, docker_backend.client)
        assert any("RUN echo baked" in line for line in lines)
        with docker_backend.open(SandboxSpec(image=tag)) as box:
            assert box.exec("cat /opt/marker; id -u").stdout == "baked\n1000\n"
    finally:
        docker_backend.client.images.remove(tag, force=True)


def test_a_missing_image_is_a_clear_sandbox_error(docker_backend):
    from sandbox.api import SandboxError

    with pytest.raises(SandboxError, match="build-base"):
        docker_backend.open(SandboxSpec(image="hgm-no-such-image:never"))


def test_auto_picks_docker_when_the_base_image_exists(docker_backend):
    from sandbox import get_backend

    backend = get_backend("auto")
    assert backend.name == "docker" and "engine answers" in backend.selection_reason
