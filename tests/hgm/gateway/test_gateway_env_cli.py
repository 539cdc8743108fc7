"""agent_env (the only environment an agent gets) and the `hgm gateway` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from hgm.cli import build_app
from hgm.gateway import GatewayConfig, agent_env, start_gateway
from hgm.gateway.redact import redact


def test_agent_env_is_minimal_and_carries_the_gateway(
    write_script: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-pass-1234")
    monkeypatch.setenv("SOME_OTHER_VAR", "x")
    with start_gateway(GatewayConfig(model=f"scripted:{write_script([])}", alias="solver")) as gateway:
        env = agent_env(gateway, {"node": 4, "task": "t"})
        extra = agent_env(gateway, {}, extra={"TZ": "UTC"})
        access = gateway.access({"node": 4})
        again = gateway.access({"node": 4})
        assert Path(env["HGM_LLM_URL"]).is_socket()
    assert set(env) == {"PATH", "HOME", "LANG", "LC_ALL", "PYTHONIOENCODING", "HGM_LLM_URL", "HGM_LLM_MODEL", "HGM_LLM_TAGS"}
    # a socket of its own (an identity), in a directory of its own under the gateway's
    assert env["HGM_LLM_URL"] != gateway.socket_path and env["HGM_LLM_MODEL"] == "solver"
    assert Path(env["HGM_LLM_URL"]).parent.parent == Path(gateway.socket_path).parent
    assert json.loads(env["HGM_LLM_TAGS"]) == {"node": "4", "task": "t"}
    assert extra["TZ"] == "UTC" and extra["HGM_LLM_URL"] != env["HGM_LLM_URL"]
    # in sandbox terms: the identity's directory mounted read-only, the URL naming it there
    (mount,) = access.mounts
    assert again.mounts == access.mounts  # equal tags share one identity
    assert Path(mount.source).parent == Path(gateway.socket_path).parent and mount.read_only
    assert access.env["HGM_LLM_URL"] == f"{mount.target}/llm.sock"
    assert not any("KEY" in k or "sk-" in v for k, v in access.env.items())
    assert not Path(mount.source).exists()  # closing the gateway removed every identity


def test_redact_hides_secret_values_and_their_tails() -> None:
    environ = {"OPENAI_API_KEY": "sk-abcdefghijklmnop12345678", "PATH": "/usr/bin:/bin/long/enough"}
    text = redact("key sk-abcdefghijklmnop12345678 or ...12345678 at /usr/bin:/bin/long/enough", environ)
    assert "abcdefgh" not in text and "12345678" not in text and "/usr/bin" in text


def test_cli_try_with_scripted_model(write_script: Callable) -> None:
    script = write_script(["the reply\n```bash\nls\n```"])
    result = CliRunner().invoke(build_app(), ["gateway", "try", "--model", f"scripted:{script}", "--json", "hi"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == 200 and data["record"]["tags"] == {"purpose": "try"}
    assert data["reply"]["choices"][0]["message"]["content"].startswith("the reply")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["gateway", "try", "--model", "nonsense", "hi"], "unknown model"),
        (["gateway", "try", "--model", "scripted:/nope.json", "hi"], "cannot read script"),
        (["gateway", "try", "--model", "scripted:x", "--reply-tokens", "0", "hi"], "--reply-tokens must be positive"),
        (["gateway", "serve", "--model", "scripted:/nope.json"], "cannot read script"),
        (["gateway", "serve", "--model", "x/y", "--port", "70000"], "--port"),
    ],
)
def test_cli_bad_input_is_a_one_line_error(args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 2
    assert fragment in result.output and len(result.output.strip().splitlines()) == 1


def test_model_access_is_in_sandbox_terms_and_maps_to_the_host() -> None:
    from hgm.gateway.access import SOCKET_MOUNT, model_access

    access = model_access("/tmp/gw/llm.sock", "hgm", {"task": "t1", "node": 3})
    assert access.env["HGM_LLM_URL"] == f"{SOCKET_MOUNT}/llm.sock"
    assert json.loads(access.env["HGM_LLM_TAGS"]) == {"node": "3", "task": "t1"}
    assert access.mounts[0].source == "/tmp/gw" and access.mounts[0].target == SOCKET_MOUNT and access.mounts[0].read_only
    assert "HOME" not in access.env and "PATH" not in access.env and not any("KEY" in k for k in access.env)
    host = access.host_env({"PATH": "/bin"})
    assert host["HGM_LLM_URL"] == "/tmp/gw/llm.sock" and host["PATH"] == "/bin" and host["HGM_LLM_MODEL"] == "hgm"
