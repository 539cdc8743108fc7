"""Request parsing: everything malformed becomes a RequestError, never an exception."""

from __future__ import annotations

import json

import pytest

from hgm.gateway.protocol import RequestError, messages_hash, parse_chat_request, parse_tags
from hgm.gateway.types import Message


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_valid_request_is_parsed_with_params_and_tags() -> None:
    request = parse_chat_request(
        body(
            model="hgm",
            messages=[{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "u"}]}],
            max_tokens=12,
            temperature=0.5,
            stop="X",
            seed=3,
        ),
        {"task": "t1"},
    )
    assert request.messages == (Message("system", "s"), Message("user", "u"))
    assert (request.params.max_tokens, request.params.temperature, request.params.stop, request.params.seed) == (
        12,
        0.5,
        ("X",),
        3,
    )
    assert request.params.tags == {"task": "t1"}


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (body(model="m"), "'messages' is missing"),
        (body(messages=[]), "non-empty list"),
        (body(messages="hi"), "non-empty list"),
        (body(messages=["hi"]), "messages[0] must be an object"),
        (body(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role"),
        (body(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (body(messages=[{"role": "user", "content": "x"}], max_tokens="many"), "'max_tokens' must be an integer"),
        (body(messages=[{"role": "user", "content": "x"}], max_tokens=0), "at least 1"),
        (body(messages=[{"role": "user", "content": "x"}], temperature=9), "between"),
        (body(messages=[{"role": "user", "content": "x"}], stop=[1]), "'stop'"),
        (body(messages=[{"role": "user", "content": "x"}], stream=True), "streaming"),
        (body(messages=[{"role": "user", "content": "x"}], model=7), "'model'"),
    ],
)
def test_malformed_requests_raise_request_error(raw: bytes, fragment: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_chat_request(raw, {})
    assert fragment in info.value.message
    assert info.value.status == 400


def test_tags_header_parsing() -> None:
    assert parse_tags(None) == {}
    assert parse_tags('{"node": 3, "task": "t", "x": null}') == {"node": "3", "task": "t"}
    for bad in ("{", "[1]", '{"a": {"b": 1}}', json.dumps({"k": "v" * 500})):
        with pytest.raises(RequestError):
            parse_tags(bad)


def test_messages_hash_depends_on_roles_and_content_only() -> None:
    a = messages_hash([Message("user", "x")])
    assert a == messages_hash((Message("user", "x"),))
    assert a != messages_hash([Message("system", "x")])
    assert a != messages_hash([Message("user", "y")])


def test_response_format_is_checked_and_kept() -> None:
    def fmt(value):
        return parse_chat_request(json.dumps({"messages": [{"role": "user", "content": "x"}],
                                              "response_format": value}).encode(), {}).params.response_format

    assert fmt(None) is None and fmt({"type": "text"}) is None
    assert fmt({"type": "json_object"}) == {"type": "json_object"}
    schema = {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}}
    assert fmt(schema) == schema
    for bad in ({"type": "json_schema"}, {"type": "xml"}, "json"):
        with pytest.raises(RequestError, match="response_format"):
            fmt(bad)
