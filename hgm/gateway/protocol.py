"""The OpenAI chat-completions wire format: parse and validate requests, build replies and errors.

Request bodies come from agents, i.e. from model-written code: every field is checked and
anything malformed becomes a `RequestError` (HTTP 400), never an exception escaping the server.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

from hgm.gateway.types import Completion, CompletionParams, Message

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
TAGS_HEADER = "X-HGM-Tags"
MAX_TAGS = 32
MAX_TAG_LENGTH = 200


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` with lone surrogates (invalid in UTF-8, e.g. half an emoji) replaced by U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


class RequestError(Exception):
    """The request is malformed; answered with HTTP `status` and an OpenAI-style error."""

    def __init__(self, message: str, status: int = 400, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = kind


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat-completions request."""

    model: str
    messages: tuple[Message, ...]
    params: CompletionParams


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """The OpenAI error shape: {"error": {"message", "type", "code", "param"}}."""
    return {"error": {"message": message, "type": kind, "code": code or kind, "param": None}}


def parse_tags(header: str | None) -> dict[str, str]:
    """Parse the `X-HGM-Tags` header (a JSON object); values become strings."""
    if not header:
        return {}
    try:
        data = json.loads(header)
    except json.JSONDecodeError as exc:
        raise RequestError(f"{TAGS_HEADER} header is not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise RequestError(f"{TAGS_HEADER} header must be a JSON object")
    if len(data) > MAX_TAGS:
        raise RequestError(f"{TAGS_HEADER} header has more than {MAX_TAGS} tags")
    tags: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, (dict, list)):
            raise RequestError(f"tag {key!r} must be a string or number")
        text, key = clean_text(str(value)), clean_text(str(key))
        if len(key) > MAX_TAG_LENGTH or len(text) > MAX_TAG_LENGTH:
            raise RequestError(f"tag {key[:40]!r} is longer than {MAX_TAG_LENGTH} characters")
        tags[str(key)] = text
    return tags


def parse_chat_request(body: bytes, tags: Mapping[str, str]) -> ChatRequest:
    """Validate a request body; raise `RequestError` on anything malformed."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"request body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RequestError("request body must be a JSON object")
    if data.get("stream"):
        raise RequestError("streaming is not supported by the hgm gateway; send stream=false")
    model = data.get("model", "")
    if not isinstance(model, str):
        raise RequestError("'model' must be a string", )
    model = clean_text(model)
    messages = _parse_messages(data.get("messages"))
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    params = CompletionParams(
        max_tokens=_optional_int(max_tokens, "max_tokens", minimum=1),
        temperature=_optional_number(data.get("temperature"), "temperature", 0.0, 2.0),
        top_p=_optional_number(data.get("top_p"), "top_p", 0.0, 1.0),
        stop=_parse_stop(data.get("stop")),
        seed=_optional_int(data.get("seed"), "seed"),
        tags=dict(tags),
        response_format=_parse_response_format(data.get("response_format")),
    )
    return ChatRequest(model=model, messages=messages, params=params)


def messages_hash(messages: tuple[Message, ...] | list[Message]) -> str:
    """A stable digest of a conversation (used to match replayed calls)."""
    canonical = json.dumps([[m.role, m.content] for m in messages], ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def completion_body(completion: Completion, model: str) -> dict[str, Any]:
    """The OpenAI chat.completion object for a finished call."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "total_tokens": completion.prompt_tokens + completion.completion_tokens,
        },
    }


def _parse_messages(raw: Any) -> tuple[Message, ...]:
    if raw is None:
        raise RequestError("'messages' is missing: send a non-empty list of {role, content}")
    if not isinstance(raw, list) or not raw:
        raise RequestError("'messages' must be a non-empty list of {role, content}")
    parsed = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise RequestError(f"messages[{index}] must be an object with 'role' and 'content'")
        role = item.get("role")
        if role not in ROLES:
            raise RequestError(f"messages[{index}].role must be one of {sorted(ROLES)}")
        parsed.append(Message(role=role, content=_flatten_content(item.get("content"), index)))
    return tuple(parsed)


def _flatten_content(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return clean_text(content)
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise RequestError(f"messages[{index}].content has a part without text")
        return clean_text("".join(parts))
    raise RequestError(f"messages[{index}].content must be a string or a list of text parts")


def _optional_int(value: Any, name: str, minimum: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"'{name}' must be an integer")
    if minimum is not None and value < minimum:
        raise RequestError(f"'{name}' must be at least {minimum}")
    return value


def _optional_number(value: Any, name: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"'{name}' must be a number")
    if not low <= value <= high:
        raise RequestError(f"'{name}' must be between {low} and {high}")
    return float(value)


def _parse_response_format(value: Any) -> dict[str, Any] | None:
    """None for free text; a JSON object or JSON schema request as given (checked)."""
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = value.get("json_schema")
        if isinstance(schema, dict) and isinstance(schema.get("schema"), dict):
            return {"type": "json_schema", "json_schema": schema}
        raise RequestError("'response_format' json_schema needs a 'json_schema' object with a 'schema'")
    raise RequestError("'response_format' must be {\"type\": \"text\" | \"json_object\" | \"json_schema\"}")


def _parse_stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (clean_text(value),)
    if isinstance(value, list) and all(isinstance(v, str) for v in value) and len(value) <= 8:
        return tuple(clean_text(v) for v in value)
    raise RequestError("'stop' must be a string or a list of at most 8 strings")
