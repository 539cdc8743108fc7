"""The in-process llama.cpp backend with the bundled SmolLM2 model."""

from __future__ import annotations

from typing import Callable

import pytest

from agent.actions import parse_action
from hgm.gateway import GatewayConfig
from hgm.gateway.backends.local_llama import smollm2_path
from hgm.gateway.client import chat, reply_text

pytestmark = [pytest.mark.local_model, pytest.mark.slow]

SYSTEM = {"role": "system", "content": "You are a coding agent. Reply with a thought and one ```bash block."}


def test_smollm2_gguf_is_found_inside_its_package() -> None:
    path = smollm2_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 10_000_000


def test_grammar_makes_every_reply_a_runnable_action(gateway_factory: Callable) -> None:
    gateway, records = gateway_factory(GatewayConfig(model="local/smollm2", n_ctx=2048, seed=3))
    for prompt, max_tokens in (("List the files in the repository.", 48), ("Run the tests of calc.py.", 96)):
        status, body = chat(gateway.url, [SYSTEM, {"role": "user", "content": prompt}], max_tokens=max_tokens)
        assert status == 200, body
        action = parse_action(reply_text(body))
        assert action.command.strip()
        assert 0 < body["usage"]["completion_tokens"] <= max_tokens
    assert all(r.cost == 0.0 and r.status == 200 for r in records)


def test_conversation_longer_than_the_context_is_cut_not_refused(gateway_factory: Callable) -> None:
    gateway, _ = gateway_factory(GatewayConfig(model="local/smollm2", n_ctx=384))
    history = [SYSTEM, {"role": "user", "content": "Fix the bug."}]
    for i in range(20):
        history.append({"role": "assistant", "content": f"Step {i}.\n```bash\ncat file{i}.py\n```"})
        history.append({"role": "user", "content": "Exit code: 0\n" + "print('x')\n" * 20})
    status, body = chat(gateway.url, history, max_tokens=32)
    assert status == 200, body
    assert "```bash" in reply_text(body)


def test_json_replies_follow_the_requested_schema_instead_of_the_action_format(gateway_factory: Callable) -> None:
    """hgm's own calls (summaries, operators, judge, diagnosis) get JSON even from SmolLM2."""
    from hgm.evaluation.summary import SCHEMA, parse_summary
    from hgm.gateway.chat import json_format

    gateway, _ = gateway_factory(GatewayConfig(model="local/smollm2", n_ctx=2048, seed=3))
    prompt = "Summarise: the agent changed calc.py to return a + b. Reply with JSON."
    status, body = chat(gateway.url, [{"role": "user", "content": prompt}], max_tokens=400,
                        response_format=json_format(SCHEMA))
    assert status == 200, body
    summary = parse_summary(reply_text(body))  # raises when the reply is not a valid summary
    assert set(summary) == set(SCHEMA["properties"]) and "```bash" not in reply_text(body)
