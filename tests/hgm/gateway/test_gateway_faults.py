"""Gateway faults: forged tags, concurrent calls against a hard cap, lone surrogates in replies."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import pytest

from hgm.gateway import BudgetLimit, CompletionParams, GatewayConfig, JsonlRecorder, Message, read_records
from hgm.gateway.backends.scripted import ScriptedBackend
from hgm.gateway.client import chat, reply_text
from hgm.gateway.costs import CostBook

USER = [{"role": "user", "content": "hello"}]


def socket_of(gateway, tags) -> str:
    return gateway.access(tags).host_env()["HGM_LLM_URL"]


def test_an_agent_cannot_bill_its_calls_to_another_job(write_script: Callable, gateway_factory: Callable) -> None:
    config = GatewayConfig(model=f"scripted:{write_script(['ok'] * 20)}", run_tags={"run": "r1"},
                           tag_budgets={"job": BudgetLimit(tokens=60)})
    gateway, records = gateway_factory(config)
    mine = {"job": "s1-1", "node": "3", "task": "t1", "purpose": "solve"}
    theirs = {"job": "s1-2", "node": "0", "task": "t2", "purpose": "solve"}
    url = socket_of(gateway, mine)
    socket_of(gateway, theirs)
    # model-written code sends another job's tags (and a run tag) in the header
    status, _ = chat(url, USER, tags={**theirs, "run": "other"}, max_tokens=5)
    assert status == 200
    assert records[-1].tags == {**mine, "run": "r1"}  # the socket's identity, never the header's
    book = CostBook()
    for record in records:
        book(record)
    assert book.job("s1-1")[1] > 0 and book.job("s1-2") == (0.0, 0)
    # the job budget that refuses is the caller's own: `theirs` still has all of its budget
    while chat(url, USER, tags=theirs, max_tokens=5)[0] == 200:
        pass
    assert records[-1].status == 402 and "job=s1-1" in records[-1].error
    assert chat(socket_of(gateway, theirs), USER, max_tokens=5)[0] == 200


def test_a_provider_failure_fails_the_rest_of_that_attempt_fast(gateway_factory: Callable, write_script: Callable) -> None:
    script = write_script({"t1": [{"error": {"status": 401, "message": "bad key"}}], "default": ["fine"] * 5})
    gateway, records = gateway_factory(GatewayConfig(model=f"scripted:{script}"))
    broken = {"job": "j1", "task": "t1"}
    url = socket_of(gateway, broken)
    assert chat(url, USER)[0] == 401
    status, body = chat(url, USER, tags={"job": "j2", "task": "t2"})  # forging another job does not help
    assert status == 503 and "failed earlier in this attempt" in body["error"]["message"]
    assert chat(socket_of(gateway, {"job": "j2", "task": "t2"}), USER)[0] == 200


def test_release_closes_a_jobs_sockets_and_close_removes_the_rest(write_script: Callable, gateway_factory: Callable) -> None:
    gateway, _ = gateway_factory(GatewayConfig(model=f"scripted:{write_script(['ok'] * 5)}"))
    solve = socket_of(gateway, {"job": "a", "purpose": "solve"})
    improve = socket_of(gateway, {"job": "a", "purpose": "improve"})
    other = socket_of(gateway, {"job": "b", "purpose": "solve"})
    assert len({solve, improve, other}) == 3
    assert gateway.release(job="a") == 2
    assert not Path(solve).parent.exists() and not Path(improve).parent.exists()
    with pytest.raises(OSError):
        chat(solve, USER, timeout=2)
    assert chat(other, USER)[0] == 200 and gateway.identities() == [{"job": "b", "purpose": "solve"}]
    gateway.close()
    assert not Path(other).parent.exists() and not Path(gateway.socket_path).parent.exists()


class SlowPriced(ScriptedBackend):
    """The priced scripted backend, with a little latency so that calls really overlap."""

    def complete(self, messages: Sequence[Message], params: CompletionParams):
        time.sleep(random.uniform(0.002, 0.02))
        return super().complete(messages, params)


def test_eight_concurrent_agents_never_cross_the_dollar_cap(write_script: Callable, gateway_factory: Callable) -> None:
    replies = ["word " * random.Random(i).randint(5, 400) for i in range(50)]
    script = write_script({"default": replies, "prices": {"prompt": 2e-6, "completion": 8e-6}})
    cap = 0.05
    gateway, records = gateway_factory(GatewayConfig(model=f"scripted:{script}", run_budget=BudgetLimit(cost=cap)),
                                       SlowPriced(script))
    refused = []

    def agent(i: int) -> None:
        url = socket_of(gateway, {"job": f"agent-{i}"})
        rng = random.Random(i)
        history = [{"role": "user", "content": "solve it " * rng.randint(1, 300)}]
        while True:
            status, body = chat(url, history, max_tokens=rng.choice([64, 256, 512]))
            if status != 200:
                refused.append(body["error"]["type"])
                return
            history.append({"role": "assistant", "content": reply_text(body)})
            history.append({"role": "user", "content": "go on"})

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    spent = sum(r.cost for r in records)
    assert spent <= cap  # by no more than zero dollars
    assert gateway.ledger.totals()["cost"] == pytest.approx(spent) and gateway.ledger.in_flight()["cost"] == 0
    assert refused == ["budget_exceeded"] * 8
    assert spent > cap * 0.5  # the cap is used, not refused from the start
    assert len([r for r in records if r.status == 200]) > 8


class Held(ScriptedBackend):
    """Holds every call until `gate` opens, so that calls are in flight together."""

    gate = threading.Event()

    def complete(self, messages: Sequence[Message], params: CompletionParams):
        self.gate.wait(30)
        return super().complete(messages, params)


def test_token_cap_counts_calls_in_flight(write_script: Callable, gateway_factory: Callable) -> None:
    script = write_script(["x" * 40] * 50)
    backend = Held(script)
    gateway, records = gateway_factory(GatewayConfig(model=f"scripted:{script}", run_budget=BudgetLimit(tokens=1000)),
                                       backend)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(chat(gateway.url, USER, max_tokens=200)[0]))
               for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(results) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    # each may use 14 + 200 tokens: only 4 fit at once, whatever they will really use (~24)
    assert results == [402] * 4 and gateway.ledger.in_flight()["tokens"] == 4 * 214
    backend.gate.set()
    for t in threads:
        t.join(30)
    assert sorted(results) == [200] * 4 + [402] * 4
    assert gateway.ledger.in_flight()["tokens"] == 0 and gateway.ledger.totals()["tokens"] <= 1000
    assert chat(gateway.url, USER, max_tokens=200)[0] == 200  # the holds are gone once settled


def test_a_lone_surrogate_in_a_reply_is_answered_and_recorded(tmp_path: Path, gateway_factory: Callable) -> None:
    script = tmp_path / "script.json"
    script.write_text('["half an emoji \\ud83d here", "fine"]', encoding="utf-8")  # JSON escape of a lone surrogate
    log = tmp_path / "calls.jsonl"
    gateway, _ = gateway_factory(GatewayConfig(model=f"scripted:{script}"))
    gateway.service._recorder = JsonlRecorder(log)
    status, body = chat(gateway.url, [{"role": "user", "content": "and one \udc80 in the prompt"}])
    assert status == 200 and reply_text(body) == "half an emoji \ufffd here"
    [record] = list(read_records(log))
    assert record.response == "half an emoji \ufffd here" and record.status == 200
    assert chat(gateway.url, USER)[0] == 200  # the server lives on
    json.dumps(body, ensure_ascii=False).encode("utf-8")


def test_many_identities_share_one_listening_thread(write_script: Callable, gateway_factory: Callable) -> None:
    gateway, records = gateway_factory(GatewayConfig(model=f"scripted:{write_script(['ok'] * 3)}"))
    before = threading.active_count()
    urls = [socket_of(gateway, {"job": f"j{i}"}) for i in range(200)]  # an `hgm eval` of a large suite
    assert threading.active_count() <= before + 1
    assert chat(urls[-1], USER)[0] == 200 and records[-1].tags == {"job": "j199"}
    assert gateway.release(job="j199") == 1 and chat(urls[0], USER)[0] == 200
