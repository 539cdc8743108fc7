"""The gateway socket mounted into a locked-down container (no network, uid 1000, no caps)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pytest

from hgm.gateway import GatewayConfig, JsonlRecorder, read_records, start_gateway

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = "hgm-base:latest"
AGENT_DIR = Path(__file__).resolve().parents[3] / "agent"
CLIENT = """
import json, os, sys
sys.path.insert(0, "/opt/hgm")
from agent.llm import LLMClient
reply = LLMClient.from_env(dict(os.environ)).chat([{"role": "user", "content": "hi"}])
print(json.dumps({"content": reply.content, "usage": reply.usage}))
"""


def test_agent_client_in_a_container_reaches_the_gateway_socket(
    tmp_path: Path, write_script: Callable, require_or_skip: Callable
) -> None:
    import docker

    client = docker.from_env()
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        require_or_skip("HGM_REQUIRE_DOCKER", f"{IMAGE} is not built (hgm sandbox build-base)")
    calls = tmp_path / "calls.jsonl"
    config = GatewayConfig(model=f"scripted:{write_script(['from the host'])}")
    with start_gateway(config, JsonlRecorder(calls)) as gateway:
        socket_dir = os.path.dirname(gateway.socket_path)
        output = client.containers.run(
            IMAGE,
            ["python3", "-c", CLIENT],
            remove=True,
            network_mode="none",
            user="1000:1000",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            environment={
                "HGM_LLM_URL": "/run/hgm/llm.sock",
                "HGM_LLM_MODEL": "hgm",
                "HGM_LLM_TAGS": json.dumps({"task": "in-docker"}),
            },
            volumes={
                socket_dir: {"bind": "/run/hgm", "mode": "ro"},
                str(AGENT_DIR): {"bind": "/opt/hgm/agent", "mode": "ro"},
            },
            stdout=True,
            stderr=True,
        )
    answer = json.loads(output.decode().strip().splitlines()[-1])
    assert answer["content"] == "from the host" and answer["usage"]["total_tokens"] > 0
    [record] = list(read_records(calls))
    assert record.tags == {"task": "in-docker"} and record.status == 200
