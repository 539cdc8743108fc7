"""Run the seed agent's own unittest suite (agent/tests) the way hgm and a sandbox do.

The agent is stdlib-only and carries its own tests; hgm accepts a self-modified agent only if
`python -m unittest discover -s agent/tests -t .` passes, so the pytest suite runs exactly that.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMAND = ["-m", "unittest", "discover", "-s", "agent/tests", "-t", "."]
BASE_IMAGE = "hgm-base:latest"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HGM_")}


@pytest.mark.slow
def test_agent_unittest_suite_passes() -> None:
    done = subprocess.run([sys.executable, *COMMAND], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK" in done.stderr.splitlines()[-1]


@pytest.mark.docker
@pytest.mark.slow
def test_agent_unittest_suite_passes_in_the_bare_base_image(require_or_skip) -> None:
    import docker

    client = docker.from_env()
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        require_or_skip("HGM_REQUIRE_DOCKER", f"{BASE_IMAGE} is not built (run `hgm sandbox build-base`)")
    try:
        logs = client.containers.run(
            BASE_IMAGE, ["python3", *COMMAND], working_dir="/src", user="1000:1000",
            environment={"HOME": "/tmp"}, network_disabled=True, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], remove=True, stderr=True,
            volumes={str(ROOT / "agent"): {"bind": "/src/agent", "mode": "ro"}},
        )
    except docker.errors.ContainerError as err:
        pytest.fail(f"agent tests failed in {BASE_IMAGE}:\n{err.stderr.decode(errors='replace') if err.stderr else err}")
    finally:
        client.close()
    assert b"OK" in logs.splitlines()[-1]
