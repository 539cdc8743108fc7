"""SWE-bench instance images from a real registry on loopback: prepare, solve, grade, prune.

Debian's `docker-registry` serves on 127.0.0.1:<free port> (the engine trusts loopback
registries over plain HTTP). The image stands in for a swebench instance image: FROM
hgm-base, root user, the repository at /testbed, and a conda-like `testbed` environment
at /opt/miniconda3 whose python announces itself, so the test sees which environment
the agent's shell and the grader run in.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evaluators.repos import snapshot
from evaluators.suite import load_suite
from hgm.cli import build_app

pytestmark = [pytest.mark.docker, pytest.mark.registry]

AGENT = Path(__file__).resolve().parents[2]
ACTIVATE = """\
# stand-in for conda's activate: `conda activate NAME` puts the env first on PATH
conda() {
  if [ "$1" = activate ]; then
    export CONDA_DEFAULT_ENV="$2" CONDA_PREFIX="/opt/miniconda3/envs/$2" PATH="/opt/miniconda3/envs/$2/bin:$PATH"
  fi
}
"""
ENV_PYTHON = '#!/bin/sh\necho "fake-conda-python-ran" >&2\nexec /usr/bin/python3 "$@"\n'
DOCKERFILE = """\
FROM hgm-base:latest
USER root
COPY testbed /testbed
COPY miniconda3 /opt/miniconda3
RUN echo {marker} > /etc/instance-marker
WORKDIR /testbed
"""


@pytest.fixture()
def registry(tmp_path: Path):
    """`docker-registry serve` on 127.0.0.1:<free port>; yields "127.0.0.1:PORT"."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {tmp_path / 'registry-data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    log = open(tmp_path / "registry.log", "wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"docker-registry exited: {(tmp_path / 'registry.log').read_text()[-500:]}")
                time.sleep(0.1)
        else:
            pytest.fail("docker-registry did not answer within 10 s")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def instances_file(calc_suite_path: Path, path: Path) -> Path:
    """Two SWE-bench-schema rows (ids with `__`, no image column: the name is derived)."""
    rows = []
    for task in load_suite(calc_suite_path).tasks():
        row = task.instance()
        row["instance_id"] = f"hgm-test__{task.instance_id}"
        row["image"] = ""
        rows.append(row)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(build_app(), list(args), env={"COLUMNS": "300", **(env or {})})


def test_prepare_pulls_solves_grades_and_prunes(
    calc_suite_path: Path, tmp_path: Path, registry: str, docker_backend, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import docker

    client = docker.from_env()
    namespace = f"hgmtest{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("HGM_SWEBENCH_NAMESPACE", namespace)
    monkeypatch.setenv("HGM_CACHE_DIR", str(tmp_path / "cache"))  # this test's own record of what hgm pulled
    jsonl = instances_file(calc_suite_path, tmp_path / "instances.jsonl")
    task = load_suite(jsonl).tasks()[0]
    # swebench's naming, spelled out: `__` -> `_1776_`, lowercase
    canonical = f"{namespace}/sweb.eval.x86_64.hgm-test_1776_calc-1:latest"
    remote = f"{registry}/{canonical}"
    bystander = f"{namespace}/sweb.eval.x86_64.hgm-test_1776_calc-9:latest"

    context = tmp_path / "context"
    shutil.copytree(snapshot(calc_suite_path / "repos" / "calc.bundle", task.base_commit), context / "testbed",
                    symlinks=True)
    env_bin = context / "miniconda3" / "envs" / "testbed" / "bin"
    env_bin.mkdir(parents=True)
    (env_bin / "python3").write_text(ENV_PYTHON)
    (env_bin / "python3").chmod(0o755)
    (context / "miniconda3" / "bin").mkdir()
    (context / "miniconda3" / "bin" / "activate").write_text(ACTIVATE)
    marker = uuid.uuid4().hex
    (context / "Dockerfile").write_text(DOCKERFILE.format(marker=marker))
    image, _ = client.images.build(path=str(context), tag=remote, rm=True)
    created = [remote, canonical, bystander]
    try:
        for line in client.images.push(remote, stream=True, decode=True):
            assert "error" not in line, line
        client.images.remove(remote)  # now only the registry has it
        assert not any(i.id == image.id for i in client.images.list())
        client.images.get("hgm-base:latest").tag(bystander)  # named like an instance image, not pulled by hgm

        # prepare: the pushed instance is pulled; the other one is a one-line error naming it
        prepared = run("suite", "prepare", str(jsonl), "--registry", registry, "--json")
        assert prepared.exit_code == 1, prepared.output
        data = json.loads(prepared.stdout)
        status = {t["instance_id"]: t for t in data["tasks"]}
        assert status["hgm-test__calc-1"]["status"] == "ready"
        assert status["hgm-test__calc-1"]["environment"]["how"] == "pulled"
        assert status["hgm-test__calc-1"]["environment"]["env"]["CONDA_DEFAULT_ENV"] == "testbed"
        failures = [line for line in prepared.stderr.splitlines() if "hgm-test__calc-2" in line]
        assert len(failures) == 1 and failures[0].startswith("failed hgm-test__calc-2: cannot pull")
        assert f"{registry}/{namespace}/sweb.eval.x86_64.hgm-test_1776_calc-2:latest" in failures[0]
        assert client.images.get(canonical).id == image.id  # also under its canonical name

        # solve with the scripted model through the gateway, in the pulled image; grade there
        script = tmp_path / "script.json"
        script.write_text(json.dumps({
            "hgm-test__calc-1": [
                "THOUGHT: where am I?\n```bash\necho env=$CONDA_DEFAULT_ENV py=$(command -v python3) "
                "user=$(id -u); cat /etc/instance-marker\n```",
                "THOUGHT: the sign is wrong.\n```bash\nsed -i 's/return a - b/return a + b/' calc.py\n```",
                "THOUGHT: done.\n```bash\nsubmit\n```",
            ],
            "default": [],
        }))
        out = tmp_path / "out"
        solved = run("eval", "--agent", str(AGENT), "--suite", str(jsonl), "--tasks", "hgm-test__calc-1",
                     "--model", f"scripted:{script}", "--backend", "docker", "--out", str(out), "--json")
        assert solved.exit_code == 0, solved.output
        assert [r["outcome"] for r in json.loads(solved.stdout)["tasks"]] == ["resolved"]
        trajectory = (out / "hgm-test__calc-1" / "trajectory.jsonl").read_text()
        assert marker in trajectory  # the agent ran in the instance image (there is no mirror to fall back on)
        assert "env=testbed py=/opt/miniconda3/envs/testbed/bin/python3 user=1000" in trajectory
        assert "fake-conda-python-ran" in (out / "hgm-test__calc-1" / "test.log").read_text()  # grader: same env

        # the disk cap removes what hgm pulled (and its layer), never the bystander
        pruned = run("sandbox", "prune", "--max-gb", "0", "--json")
        assert pruned.exit_code == 0, pruned.output
        removed = [g for g in json.loads(pruned.stdout)["groups"] if g["removed"]]
        assert len(removed) == 1 and {remote, canonical} <= set(removed[0]["refs"])
        assert not any(i.id == image.id for i in client.images.list())
        assert client.images.get(bystander).id == client.images.get("hgm-base:latest").id
    finally:
        for ref in created:
            try:
                client.images.remove(ref)
            except docker.errors.APIError:
                pass
