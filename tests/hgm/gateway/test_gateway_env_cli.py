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
        mounted = agent_env(gateway, {}, url="/run/hgm/llm.sock", extra={"TZ": "UTC"})
    assert set(env) == {"PATH", "HOME", "LANG", "LC_ALL", "PYTHONIOENCODING", "HGM_LLM_URL", "HGM_LLM_MODEL", "HGM_LLM_TAGS"}
    assert env["HGM_LLM_URL"] == gateway.socket_path and env["HGM_LLM_MODEL"] == "solver"
    assert json.loads(env["HGM_LLM_TAGS"]) == {"node": "4", "task": "t"}
    assert mounted["HGM_LLM_URL"] == "/run/hgm/llm.sock" and mounted["TZ"] == "UTC"


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
