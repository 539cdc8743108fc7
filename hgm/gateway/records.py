"""Call records: what the gateway reports about every chat call, and a JSONL sink for them."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator


@dataclass(frozen=True)
class CallRecord:
    """One chat-completions call as the gateway saw it (also refused and failed ones)."""

    started_at: float  # unix time
    tags: dict[str, str]
    model: str  # the model spec that served (or would have served) the call
    status: int  # HTTP status returned to the caller
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_s: float = 0.0
    attempts: int = 0  # backend attempts, retries included
    error: str | None = None  # None on success; else "<type>: <message>"
    messages_hash: str = ""  # sha256 of the request's (role, content) list
    response: str | None = None  # the reply text (used by the replay backend)
    finish_reason: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CallRecord":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


Recorder = Callable[[CallRecord], None]


@dataclass
class JsonlRecorder:
    """Appends every record as one JSON line to `path` (thread-safe; flushed per line)."""

    path: Path
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, record: CallRecord) -> None:
        line = record.to_json() + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)


def read_records(path: Path) -> Iterator[CallRecord]:
    """Yield the records of a JSONL file written by `JsonlRecorder`, skipping broken lines."""
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(data, dict):
                continue
            try:
                yield CallRecord.from_dict(data)
            except TypeError:  # a line missing required fields
                continue


PROVIDER_FAILED = "model provider failed"  # how records of such attempts begin their detail
RUN_BUDGET_SPENT = "the run's model budget is spent"  # ... and of attempts the run's budget cut short
# Error kinds the gateway gives to failures that are the provider's, not the caller's.
PROVIDER_ERROR_KINDS = ("authentication_error", "model_unavailable", "provider_error", "internal_error")


def provider_failure(record: CallRecord) -> str | None:
    """The failure's message when the call failed for the provider's reasons, else None.

    A rejected key, an unknown model, a server that is down or answers 5xx after the
    gateway's retries, or a backend that crashed are not the agent's doing; a budget
    refusal (402), a malformed request or a prompt longer than the model's context are.
    """
    if record.status in (0, 200, 402) or not record.error:
        return None
    kind, _, message = record.error.partition(": ")
    if kind not in PROVIDER_ERROR_KINDS:
        return None
    lowered = message.lower()
    if "contextwindowexceeded" in lowered or "context length" in lowered or "context window" in lowered:
        return None
    return message or kind


def run_budget_refusal(record: CallRecord) -> str | None:
    """The refusal's message when the call was refused by the run's own budget, else None.

    Such an attempt was cut short by the run, not by anything the agent did (a per-attempt
    budget refusal, by contrast, is the agent's own doing).
    """
    from hgm.gateway.budget import refused_by_run_budget

    if record.status != 402 or not record.error:
        return None
    _, _, message = record.error.partition(": ")
    return message if refused_by_run_budget(message) else None
