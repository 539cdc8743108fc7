"""The litellm backend, offline: litellm's own mock responses stand in for a provider."""

from __future__ import annotations

import functools
from typing import Callable

import pytest

from hgm.gateway import GatewayConfig
from hgm.gateway.backends.litellm_backend import classify_error
from hgm.gateway.client import chat, reply_text
from hgm.gateway.types import TransientBackendError

USER = [{"role": "user", "content": "hello"}]


class FakeProviderError(Exception):
    def __init__(self, status: int | None, message: str = "x") -> None:
        super().__init__(message)
        self.status_code = status


class Timeout(Exception):  # named like litellm's, no status
    pass


@pytest.mark.parametrize(
    ("error", "transient", "status"),
    [
        (FakeProviderError(429), True, 429),
        (FakeProviderError(503), True, 503),
        (Timeout("slow"), True, 504),
        (FakeProviderError(400), False, 400),
        (FakeProviderError(401), False, 401),
        (FakeProviderError(500, "Missing credentials: set OPENAI_API_KEY"), False, 401),
    ],
)
def test_provider_errors_are_classified(error: Exception, transient: bool, status: int) -> None:
    classified = classify_error(error)
    assert isinstance(classified, TransientBackendError) is transient
    assert classified.status == status


@pytest.mark.slow
def test_litellm_call_is_priced_and_recorded(gateway_factory: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    import litellm

    monkeypatch.setattr(litellm, "completion", functools.partial(litellm.completion, mock_response="mocked reply"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-key-for-mock-000000")
    gateway, records = gateway_factory(GatewayConfig(model="openai/gpt-4o-mini"))
    status, body = chat(gateway.url, USER, tags={"purpose": "diagnose"})
    assert status == 200 and reply_text(body) == "mocked reply"
    [record] = records
    assert record.cost > 0 and record.prompt_tokens > 0 and record.tags == {"purpose": "diagnose"}


@pytest.mark.slow
def test_litellm_rate_limits_are_retried(gateway_factory: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    import litellm

    original = litellm.completion
    outcomes = iter(["litellm.RateLimitError", "finally"])
    monkeypatch.setattr(litellm, "completion", lambda **kw: original(mock_response=next(outcomes), **kw))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-key-for-mock-000000")
    config = GatewayConfig(model="openai/gpt-4o-mini", retry_attempts=3, retry_initial_wait=0.001, retry_max_wait=0.01)
    gateway, records = gateway_factory(config)
    status, body = chat(gateway.url, USER)
    assert status == 200 and reply_text(body) == "finally"
    assert records[-1].attempts == 2


@pytest.mark.slow
def test_json_replies_ask_providers_for_json_mode(gateway_factory: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    import litellm

    seen: list[dict] = []
    original = litellm.completion
    monkeypatch.setattr(litellm, "completion", lambda **kw: seen.append(kw) or original(mock_response='{"a": 1}', **kw))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-key-for-mock-000000")
    gateway, _ = gateway_factory(GatewayConfig(model="openai/gpt-4o-mini"))
    schema = {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}}
    assert chat(gateway.url, USER, response_format=schema)[0] == 200
    assert chat(gateway.url, USER)[0] == 200
    assert seen[0]["response_format"] == {"type": "json_object"} and "response_format" not in seen[1]
