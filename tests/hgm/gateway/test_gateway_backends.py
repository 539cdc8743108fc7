"""Scripted and replay backends, context fitting, and model-spec parsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from hgm.gateway import CallRecord, GatewayConfig, JsonlRecorder
from hgm.gateway.backends import make_backend
from hgm.gateway.backends.context_fit import fit_messages
from hgm.gateway.backends.grammar import action_grammar
from hgm.gateway.backends.replay import ReplayBackend
from hgm.gateway.backends.scripted import SUBMIT_REPLY, ScriptedBackend
from hgm.gateway.protocol import messages_hash
from hgm.gateway.types import BackendError, CompletionParams, Message, TransientBackendError

USER = [Message("user", "task")]


def ask(backend: Any, tags: dict[str, str] | None = None, messages: list[Message] = USER) -> str:
    return backend.complete(messages, CompletionParams(tags=tags or {})).text


def test_scripted_list_plays_in_order_then_submits(write_script: Callable[[Any], Path]) -> None:
    backend = ScriptedBackend(write_script(["one", {"reply": "two", "completion_tokens": 7}]))
    assert ask(backend) == "one"
    completion = backend.complete(USER, CompletionParams())
    assert (completion.text, completion.completion_tokens) == ("two", 7)
    assert ask(backend) == SUBMIT_REPLY
    assert ask(backend) == SUBMIT_REPLY


def test_scripted_cursors_are_per_conversation_and_keyed_by_task_or_purpose(
    write_script: Callable[[Any], Path],
) -> None:
    backend = ScriptedBackend(write_script({"t1": ["t1-a", "t1-b"], "diagnose": ["d"], "default": ["x"]}))
    assert ask(backend, {"task": "t1", "node": "0"}) == "t1-a"
    assert ask(backend, {"task": "t1", "node": "1"}) == "t1-a"  # another attempt starts over
    assert ask(backend, {"task": "t1", "node": "0"}) == "t1-b"
    assert ask(backend, {"purpose": "diagnose"}) == "d"
    assert ask(backend, {"task": "other"}) == "x"


def test_scripted_jsonl_and_error_entries(write_script: Callable[[Any], Path]) -> None:
    lines = [json.dumps({"error": {"status": 503, "message": "down"}}), json.dumps({"error": {"status": 400}}), '"ok"']
    backend = ScriptedBackend(write_script("\n".join(lines), "s.jsonl"))
    with pytest.raises(TransientBackendError):
        ask(backend)
    with pytest.raises(BackendError) as info:
        ask(backend)
    assert not isinstance(info.value, TransientBackendError)
    assert ask(backend) == "ok"


def test_scripted_cases_answer_by_what_the_prompt_contains(write_script: Callable[[Any], Path]) -> None:
    entry = {"reply": "plain", "cases": [{"contains": "[[S2]]", "reply": "three"}, {"contains": "[[S1]]", "reply": "two"}]}
    backend = ScriptedBackend(write_script({"default": [entry]}))
    assert ask(backend, {"job": "a"}) == "plain"
    assert ask(backend, {"job": "b"}, [Message("system", "memory: [[S1]]"), Message("user", "go")]) == "two"
    assert ask(backend, {"job": "c"}, [Message("user", "[[S1]] and [[S2]]")]) == "three"  # the first case that matches


@pytest.mark.parametrize("content", ["{broken", '{"a": "not a list"}', "[3]", '[{"nothing": 1}]',
                                     '[{"reply": "x", "cases": [{"contains": 1, "reply": "y"}]}]'])
def test_bad_scripts_are_refused_with_a_clear_error(write_script: Callable[[Any], Path], content: str) -> None:
    with pytest.raises(ValueError, match="script"):
        ScriptedBackend(write_script(content))


def test_replay_prefers_same_tags_and_messages(tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    recorder = JsonlRecorder(calls)
    other = [Message("user", "other")]
    for i, (tags, messages, reply) in enumerate(
        [
            ({"run": "r1", "task": "a"}, USER, "a-first"),
            ({"run": "r1", "task": "b"}, USER, "b-first"),
            ({"run": "r1", "task": "a"}, other, "a-other"),
        ]
    ):
        recorder(CallRecord(started_at=i, tags=tags, model="m", status=200, response=reply,
                            messages_hash=messages_hash(messages)))
    recorder(CallRecord(started_at=9, tags={"task": "a"}, model="m", status=500, error="x"))
    backend = ReplayBackend(tmp_path)
    assert ask(backend, {"run": "r2", "task": "a"}, other) == "a-other"  # exact match, run ignored
    assert ask(backend, {"run": "r2", "task": "a"}, [Message("user", "new")]) == "a-first"  # same tags
    assert ask(backend, {"task": "zzz"}) == "b-first"  # anything left, in order
    assert ask(backend, {"task": "a"}) == SUBMIT_REPLY


def test_replay_of_missing_or_empty_source_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        ReplayBackend(tmp_path / "nope")
    with pytest.raises(ValueError, match="no successful"):
        ReplayBackend(tmp_path)


def test_model_spec_errors_are_clear(tmp_path: Path) -> None:
    for spec, fragment in [
        ("gpt4", "unknown model"),
        ("local/" + str(tmp_path / "missing.gguf"), "does not exist"),
        ("scripted:" + str(tmp_path / "missing.json"), "cannot read script"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            make_backend(spec, GatewayConfig(model=spec))


def count_words(text: str) -> int:
    return len(text.split())


def test_fit_messages_keeps_system_task_and_recent_turns() -> None:
    messages = [Message("system", "sys"), Message("user", "the task")]
    messages += [Message("assistant" if i % 2 else "user", f"turn {i} " + "w " * 50) for i in range(20)]
    fitted = fit_messages(messages, count_words, budget=300)
    assert fitted[:2] == messages[:2]
    assert fitted[-1] == messages[-1]
    assert "omitted" in fitted[2].content
    assert sum(count_words(m.content) + 8 for m in fitted) <= 300
    assert fit_messages(messages[:3], count_words, budget=10_000) == messages[:3]


def test_fit_messages_cuts_a_huge_single_message() -> None:
    messages = [Message("user", "word " * 5000)]
    fitted = fit_messages(messages, count_words, budget=200)
    assert len(fitted) == 1 and count_words(fitted[0].content) + 8 <= 200
    assert "cut to fit" in fitted[0].content


def test_action_grammar_bounds_fit_the_token_budget() -> None:
    for max_tokens in (24, 64, 256, 4096):
        grammar = action_grammar(max_tokens)
        bounds = [int(part.split("}")[0]) for part in grammar.split(",")[1:]]
        assert '"\\n\\n```bash\\n"' in grammar
        if max_tokens >= 64:
            assert sum(bounds) + 2 + 16 <= max_tokens
