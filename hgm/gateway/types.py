"""The gateway's inner vocabulary: messages, call parameters, completions, backend errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence


@dataclass(frozen=True)
class Message:
    """One chat message, content already flattened to text."""

    role: str
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class CompletionParams:
    """Sampling parameters of one call, plus the caller's tags (run, node, task, purpose)."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    # None: free text. {"type": "json_object"} or {"type": "json_schema", "json_schema": {"schema": {...}}}:
    # a JSON reply (local models decode under a JSON grammar instead of the agent's action format)
    response_format: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Completion:
    """What a backend answered."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cost: float = 0.0
    finish_reason: str = "stop"


class Backend(Protocol):
    """A model behind the gateway. Implementations must be safe to call from many threads."""

    name: str

    def complete(self, messages: Sequence[Message], params: CompletionParams) -> Completion: ...


class BackendError(Exception):
    """A model call failed in a way that retrying will not fix (bad request, auth, ...)."""

    def __init__(self, message: str, status: int = 502, kind: str = "api_error") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = kind


class TransientBackendError(BackendError):
    """A model call failed in a way worth retrying (rate limit, 5xx, timeout, connection)."""


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters a token) for backends that do not count."""
    return max(1, (len(text) + 3) // 4) if text else 0
