"""hgm's diagnosis calls reach a real gateway over its unix socket and loopback TCP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hgm.gateway.chat import LLMCallError, chat
from hgm.gateway import BudgetLimit, GatewayConfig, start_gateway


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(["first reply", "second reply"]), encoding="utf-8")
    return path


def test_chat_over_socket_and_tcp_is_tagged(script: Path) -> None:
    records = []
    with start_gateway(GatewayConfig(model=f"scripted:{script}", tcp_port=0), records.append) as gw:
        reply = chat(gw.socket_path, "hgm", [{"role": "user", "content": "hi"}], {"node": 3, "purpose": "diagnose"})
        again = chat(gw.tcp_url, "hgm", [{"role": "user", "content": "hi"}], {"node": 3, "purpose": "diagnose"})
    assert (reply.text, again.text) == ("first reply", "second reply")
    assert records[0].tags["node"] == "3" and records[0].tags["purpose"] == "diagnose"


def test_budget_refusal_and_dead_gateway_raise_llm_call_error(script: Path, tmp_path: Path) -> None:
    config = GatewayConfig(model=f"scripted:{script}", run_budget=BudgetLimit(tokens=0))
    with start_gateway(config) as gw:
        with pytest.raises(LLMCallError) as refused:
            chat(gw.socket_path, "hgm", [{"role": "user", "content": "hi"}], {})
    assert refused.value.status == 402
    with pytest.raises(LLMCallError) as dead:
        chat(str(tmp_path / "no.sock"), "hgm", [{"role": "user", "content": "hi"}], {}, timeout=2)
    assert dead.value.status == 0
