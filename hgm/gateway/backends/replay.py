"""`replay:DIR`: serve the recorded replies of an earlier run (debugging, demos).

DIR is a JSONL file of call records (as written by `JsonlRecorder`) or a directory whose
`*.jsonl` files hold them. Only successful calls are replayed. A call gets, in this order:
the earliest unused record with the same tags (the `run` tag ignored) and the same
messages hash; else the earliest unused record with the same tags; else the earliest
unused record at all; else `SUBMIT_REPLY`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

from hgm.gateway.backends.scripted import SUBMIT_REPLY
from hgm.gateway.protocol import messages_hash
from hgm.gateway.records import CallRecord, read_records
from hgm.gateway.types import Completion, CompletionParams, Message, estimate_tokens


def load_replayable(source: Path) -> list[CallRecord]:
    """Successful records from a JSONL file or a directory of them, oldest first."""
    source = Path(source)
    if source.is_dir():
        files = sorted(source.glob("*.jsonl"))
    elif source.is_file():
        files = [source]
    else:
        raise ValueError(f"replay source {source} does not exist (give a calls JSONL file or its directory)")
    records = [r for f in files for r in read_records(f) if r.status == 200 and r.response is not None]
    if not records:
        raise ValueError(f"replay source {source} holds no successful call records")
    return sorted(records, key=lambda r: r.started_at)


def _tag_key(tags: dict[str, str] | object) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in dict(tags).items() if k != "run"))  # type: ignore[call-overload]


class ReplayBackend:
    """Serves recorded replies; thread-safe."""

    def __init__(self, source: Path) -> None:
        self.name = f"replay:{source}"
        self._records = load_replayable(source)
        self._used = [False] * len(self._records)
        self._lock = threading.Lock()

    def complete(self, messages: Sequence[Message], params: CompletionParams) -> Completion:
        key, digest = _tag_key(params.tags), messages_hash(list(messages))
        with self._lock:
            index = self._pick(key, digest)
            if index is not None:
                self._used[index] = True
        if index is None:
            prompt_tokens = sum(estimate_tokens(m.content) + 4 for m in messages)
            return Completion(SUBMIT_REPLY, prompt_tokens, estimate_tokens(SUBMIT_REPLY))
        record = self._records[index]
        return Completion(
            record.response or "",
            record.prompt_tokens,
            record.completion_tokens,
            finish_reason=record.finish_reason or "stop",
        )

    def _pick(self, key: tuple[tuple[str, str], ...], digest: str) -> int | None:
        unused = [i for i, used in enumerate(self._used) if not used]
        for wanted in (
            lambda r: _tag_key(r.tags) == key and r.messages_hash == digest,
            lambda r: _tag_key(r.tags) == key,
            lambda r: True,
        ):
            for i in unused:
                if wanted(self._records[i]):
                    return i
        return None
