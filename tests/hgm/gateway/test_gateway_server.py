"""The running gateway over its unix socket (and TCP): answers, errors, budgets, retries, threads."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import pytest

from hgm.gateway import (
    BudgetLimit,
    Completion,
    CompletionParams,
    GatewayConfig,
    JsonlRecorder,
    Message,
    TransientBackendError,
    read_records,
    start_gateway,
)
from hgm.gateway.client import UnixHTTPConnection, chat, reply_text, request
from hgm.gateway.types import BackendError

USER = [{"role": "user", "content": "hello"}]
FAST_RETRY = {"retry_attempts": 3, "retry_initial_wait": 0.001, "retry_max_wait": 0.01}


class FlakyBackend:
    """Fails `failures` times with `error`, then answers."""

    name = "flaky"

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def complete(self, messages: Sequence[Message], params: CompletionParams) -> Completion:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return Completion("fine", prompt_tokens=10, completion_tokens=5, cost=0.25)


def test_chat_call_answers_in_openai_shape_and_is_recorded(write_script: Callable, gateway_factory: Callable) -> None:
    config = GatewayConfig(model=f"scripted:{write_script(['hi there'])}", run_tags={"run": "r7"})
    gateway, records = gateway_factory(config)
    status, body = chat(gateway.url, USER, model="hgm", tags={"node": 3, "task": "t1", "purpose": "solve", "run": "x"})
    assert status == 200
    assert reply_text(body) == "hi there"
    assert body["object"] == "chat.completion" and body["model"] == "hgm"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"] > 0
    [record] = records
    assert record.tags == {"run": "r7", "node": "3", "task": "t1", "purpose": "solve"}  # run tag is the gateway's
    assert record.status == 200 and record.error is None and record.attempts == 1
    assert record.model == config.model and record.response == "hi there" and record.latency_s > 0
    assert (record.prompt_tokens, record.completion_tokens) == (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"])


def test_models_health_and_unknown_paths(write_script: Callable, gateway_factory: Callable) -> None:
    gateway, _ = gateway_factory(GatewayConfig(model=f"scripted:{write_script([])}", alias="solver"))
    status, models = request(gateway.url, "GET", "/v1/models")
    assert status == 200 and [m["id"] for m in models["data"]] == ["solver"]
    status, health = request(gateway.url, "GET", "/health")
    assert status == 200 and health["status"] == "ok"
    for method in ("GET", "POST"):
        status, body = request(gateway.url, method, "/v1/nothing", b"{}")
        assert status == 404 and body["error"]["type"] == "not_found"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"model": "hgm"}', "'messages' is missing"),
        (b'{"messages": [{"role": "user"}], "max_tokens": -1}', "max_tokens"),
        (b"", "not valid JSON"),
    ],
)
def test_bad_bodies_get_400_openai_errors_and_the_server_survives(
    write_script: Callable, gateway_factory: Callable, raw: bytes, fragment: str
) -> None:
    gateway, records = gateway_factory(GatewayConfig(model=f"scripted:{write_script(['ok'])}"))
    status, body = request(gateway.url, "POST", "/v1/chat/completions", raw, {"Content-Type": "application/json"})
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error" and fragment in body["error"]["message"]
    assert records[-1].status == 400 and fragment in (records[-1].error or "")
    assert chat(gateway.url, USER)[0] == 200


def test_bad_tags_header_oversized_body_and_missing_length(write_script: Callable, gateway_factory: Callable) -> None:
    config = GatewayConfig(model=f"scripted:{write_script(['ok'])}", max_body_bytes=1000)
    gateway, _ = gateway_factory(config)
    payload = json.dumps({"messages": USER}).encode()
    status, body = request(gateway.url, "POST", "/v1/chat/completions", payload, {"X-HGM-Tags": "{nope"})
    assert status == 400 and "X-HGM-Tags" in body["error"]["message"]
    status, body = request(gateway.url, "POST", "/v1/chat/completions", b"x" * 5000)
    assert status == 413 and body["error"]["type"] == "invalid_request_error"
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(gateway.url)
    raw.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = raw.recv(65536).decode()
    raw.close()
    assert answer.startswith("HTTP/1.1 411") and '"error"' in answer
    assert chat(gateway.url, USER)[0] == 200


def test_budget_exceeded_answers_402_budget_error(write_script: Callable, gateway_factory: Callable) -> None:
    config = GatewayConfig(
        model=f"scripted:{write_script(['x' * 400] * 10)}",
        tag_budgets={"node": BudgetLimit(tokens=150)},
    )
    gateway, records = gateway_factory(config)
    # a call reserves its worst case first (prompt + max_tokens): without max_tokens the model's
    # default cap (4096) could never fit under 150 tokens
    status, body = chat(gateway.url, USER, tags={"node": "1"})
    assert status == 402 and "would be crossed" in body["error"]["message"]
    assert chat(gateway.url, USER, tags={"node": "1"}, max_tokens=110)[0] == 200  # ~105 tokens
    status, body = chat(gateway.url, USER, tags={"node": "1"}, max_tokens=110)  # could cross: refused
    assert status == 402
    assert body == {
        "error": {"message": body["error"]["message"], "type": "budget_exceeded", "code": "budget_exceeded", "param": None}
    }
    assert "node=1" in body["error"]["message"]
    assert records[-1].status == 402 and records[-1].attempts == 0
    assert chat(gateway.url, USER, tags={"node": "2"}, max_tokens=110)[0] == 200  # other nodes are unaffected


def test_run_cost_budget(gateway_factory: Callable) -> None:
    backend = FlakyBackend(0, RuntimeError())
    gateway, _ = gateway_factory(GatewayConfig(model="fake/x", run_budget=BudgetLimit(cost=0.5)), backend)
    assert chat(gateway.url, USER)[0] == 200
    assert chat(gateway.url, USER)[0] == 200
    status, body = chat(gateway.url, USER)
    assert status == 402 and "cost budget of run" in body["error"]["message"]
    assert backend.calls == 2


def test_transient_errors_are_retried_then_succeed(gateway_factory: Callable) -> None:
    backend = FlakyBackend(2, TransientBackendError("rate limited", status=429))
    gateway, records = gateway_factory(GatewayConfig(model="fake/x", **FAST_RETRY), backend)
    status, body = chat(gateway.url, USER)
    assert status == 200 and reply_text(body) == "fine"
    assert backend.calls == 3 and records[-1].attempts == 3 and records[-1].cost == 0.25


def test_retries_give_up_with_the_provider_status(gateway_factory: Callable) -> None:
    backend = FlakyBackend(99, TransientBackendError("upstream 503", status=503, kind="provider_error"))
    gateway, records = gateway_factory(GatewayConfig(model="fake/x", **FAST_RETRY), backend)
    status, body = chat(gateway.url, USER)
    assert status == 503 and body["error"]["type"] == "provider_error" and "upstream 503" in body["error"]["message"]
    assert backend.calls == 3 and records[-1].attempts == 3 and records[-1].error


def test_final_errors_are_not_retried(gateway_factory: Callable) -> None:
    backend = FlakyBackend(99, BackendError("bad request", status=400, kind="provider_error"))
    gateway, _ = gateway_factory(GatewayConfig(model="fake/x", **FAST_RETRY), backend)
    assert chat(gateway.url, USER)[0] == 400
    assert backend.calls == 1


def test_backend_crash_is_a_500_not_a_dead_server(gateway_factory: Callable) -> None:
    backend = FlakyBackend(1, ZeroDivisionError("boom"))
    gateway, _ = gateway_factory(GatewayConfig(model="fake/x", **FAST_RETRY), backend)
    status, body = chat(gateway.url, USER)
    assert status == 500 and body["error"]["type"] == "internal_error"
    assert chat(gateway.url, USER)[0] == 200


def test_secrets_in_provider_errors_are_redacted(gateway_factory: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-0123456789abcdefSECRET"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    backend = FlakyBackend(99, BackendError(f"Incorrect API key provided: {secret}", status=401))
    gateway, records = gateway_factory(GatewayConfig(model="fake/x"), backend)
    status, body = chat(gateway.url, USER)
    assert status == 401
    assert secret not in json.dumps(body) and secret[-8:] not in json.dumps(body)
    assert secret not in (records[-1].error or "")


def test_parallel_requests_are_served_concurrently(gateway_factory: Callable) -> None:
    parallel = 6
    barrier = threading.Barrier(parallel, timeout=10)

    class MeetingBackend:
        name = "meeting"

        def complete(self, messages: Sequence[Message], params: CompletionParams) -> Completion:
            barrier.wait()  # only passes if all requests are in flight at once
            return Completion(f"answer {params.tags['i']}", 1, 1)

    gateway, records = gateway_factory(GatewayConfig(model="fake/x", retry_attempts=1), MeetingBackend())
    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(lambda i: chat(gateway.url, USER, tags={"i": i}), range(parallel)))
    assert [(s, reply_text(b)) for s, b in results] == [(200, f"answer {i}") for i in range(parallel)]
    assert len(records) == parallel


def test_keep_alive_connection_serves_several_calls(write_script: Callable, gateway_factory: Callable) -> None:
    gateway, _ = gateway_factory(GatewayConfig(model=f"scripted:{write_script(['a', 'b', 'c'])}"))
    connection = UnixHTTPConnection(gateway.url)
    try:
        replies = [reply_text(chat(gateway.url, USER, connection=connection)[1]) for _ in range(3)]
    finally:
        connection.close()
    assert replies == ["a", "b", "c"]


def test_tcp_listener_serves_the_same(write_script: Callable, gateway_factory: Callable) -> None:
    gateway, _ = gateway_factory(GatewayConfig(model=f"scripted:{write_script(['tcp!'])}", tcp_port=0))
    assert gateway.tcp_url and gateway.tcp_url.startswith("http://127.0.0.1:")
    status, body = chat(gateway.tcp_url, USER)
    assert status == 200 and reply_text(body) == "tcp!"


def test_socket_is_world_connectable_and_removed_on_close(write_script: Callable) -> None:
    with start_gateway(GatewayConfig(model=f"scripted:{write_script([])}")) as gateway:
        path = gateway.socket_path
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o777
        # reachable by path, but not listable: the identity sockets inside stay unknown to others
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o711
        identity = gateway.access({"job": "j1"}).host_env()["HGM_LLM_URL"]
        assert stat.S_IMODE(os.stat(identity).st_mode) == 0o777
        assert stat.S_IMODE(os.stat(os.path.dirname(identity)).st_mode) == 0o755
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
    with pytest.raises(OSError):
        chat(path, USER, timeout=2)


def test_explicit_socket_path_replaces_stale_socket_but_not_a_live_one(tmp_path: Path, write_script: Callable) -> None:
    path = tmp_path / "gw.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # leaves the file behind, with nobody listening
    config = GatewayConfig(model=f"scripted:{write_script(['ok'])}", socket_path=str(path))
    with start_gateway(config) as gateway:
        assert chat(gateway.url, USER)[0] == 200
        with pytest.raises(ValueError, match="already listens"):
            start_gateway(config)
    with pytest.raises(ValueError, match="longer than"):
        start_gateway(GatewayConfig(model=config.model, socket_path="/tmp/" + "x" * 120))


def test_jsonl_recorder_writes_one_line_per_call(tmp_path: Path, write_script: Callable) -> None:
    calls = tmp_path / "run" / "calls.jsonl"
    config = GatewayConfig(model=f"scripted:{write_script(['one', 'two'])}")
    with start_gateway(config, JsonlRecorder(calls)) as gateway:
        chat(gateway.url, USER, tags={"task": "t"})
        chat(gateway.url, USER, tags={"task": "t"})
        request(gateway.url, "POST", "/v1/chat/completions", b"junk")
    records = list(read_records(calls))
    assert [(r.status, r.response) for r in records] == [(200, "one"), (200, "two"), (400, None)]
    assert records[0].tags == {"task": "t"}


def test_replay_serves_a_recorded_run(tmp_path: Path, write_script: Callable) -> None:
    calls = tmp_path / "calls.jsonl"
    with start_gateway(GatewayConfig(model=f"scripted:{write_script(['r1', 'r2'])}"), JsonlRecorder(calls)) as gateway:
        originals = [reply_text(chat(gateway.url, USER, tags={"task": "t"})[1]) for _ in range(2)]
    with start_gateway(GatewayConfig(model=f"replay:{tmp_path}")) as gateway:
        replayed = [reply_text(chat(gateway.url, USER, tags={"task": "t"})[1]) for _ in range(2)]
    assert replayed == originals == ["r1", "r2"]


def test_aliases_route_to_other_models(write_script: Callable, gateway_factory: Callable) -> None:
    main, other = write_script(["main"], "a.json"), write_script(["other"], "b.json")
    gateway, records = gateway_factory(GatewayConfig(model=f"scripted:{main}", aliases={"big": f"scripted:{other}"}))
    assert reply_text(chat(gateway.url, USER, model="big")[1]) == "other"
    assert reply_text(chat(gateway.url, USER, model="whatever")[1]) == "main"
    assert records[0].model == f"scripted:{other}"


def test_unloadable_alias_model_is_an_error_answer(write_script: Callable, gateway_factory: Callable) -> None:
    gateway, _ = gateway_factory(GatewayConfig(model=f"scripted:{write_script([])}", aliases={"bad": "nonsense"}))
    status, body = chat(gateway.url, USER, model="bad")
    assert status == 500 and body["error"]["type"] == "model_unavailable"


def test_raw_http_errors_are_json(write_script: Callable, gateway_factory: Callable) -> None:
    gateway, _ = gateway_factory(GatewayConfig(model=f"scripted:{write_script([])}"))
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(gateway.url)
    raw.sendall(b"BREW /pot HTCPCP/1.0\r\n\r\n")
    answer = raw.recv(65536).decode()
    raw.close()
    assert answer.startswith("HTTP/1.1 4") and '"error"' in answer


def test_failed_tcp_listener_leaves_no_unix_listener_behind(write_script: Callable) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    socket_path = f"/tmp/hgm-test-{os.getpid()}.sock"
    config = GatewayConfig(model=f"scripted:{write_script([])}", socket_path=socket_path, tcp_port=blocker.getsockname()[1])
    try:
        with pytest.raises(OSError):
            start_gateway(config)
        assert not os.path.exists(socket_path)
    finally:
        blocker.close()


def test_an_attempt_the_provider_failed_fails_fast_for_the_rest(write_script: Callable, gateway_factory: Callable) -> None:
    script = {"t1": [{"error": {"status": 401, "message": "bad key"}}, "never served"], "t2": ["fine"]}
    gateway, records = gateway_factory(GatewayConfig(model=f"scripted:{write_script(script)}"))
    assert chat(gateway.url, USER, tags={"job": "a", "task": "t1"})[0] == 401
    status, body = chat(gateway.url, USER, tags={"job": "a", "task": "t1"})
    assert status == 503 and "failed earlier in this attempt" in body["error"]["message"]
    assert records[-1].attempts == 0  # answered without calling the backend again
    status, body = chat(gateway.url, USER, tags={"job": "b", "task": "t2"})  # other attempts are unaffected
    assert status == 200 and reply_text(body) == "fine"
