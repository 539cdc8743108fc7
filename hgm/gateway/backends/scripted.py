"""`scripted:FILE`: a deterministic test double that plays back replies from a file.

File formats (chosen by content, not by extension):

* a JSON list, or JSONL (one entry per line): the replies of every conversation, in order;
* a JSON object mapping a key to such a list: a call uses the list whose key equals its
  `task` tag, else its `purpose` tag, else `"default"`. The object may also hold
  `"prices": {"prompt": USD_PER_TOKEN, "completion": USD_PER_TOKEN}`: every call then
  costs what a priced provider would charge (for budget tests).

An entry is a reply string, or an object `{"reply": str}` with optional
`"prompt_tokens"`/`"completion_tokens"` overrides, or `{"error": {"status": 503,
"message": "..."}}` to simulate a provider failure (429 and 5xx are retried by the gateway).
An object may also hold `"cases": [{"contains": str, "reply": str}, ...]`: the first case
whose text occurs in the request's messages gives the reply, else `"reply"` does (a test
double that reacts to what its prompt shows, e.g. the lessons memory).

Every distinct set of tags (one agent attempt: run, node, task, purpose) has its own cursor,
so parallel attempts each replay the script from its start. Once a list is used up, every
further call answers `SUBMIT_REPLY`, which ends a seed-agent attempt. Like a provider, a
reply longer than the request's `max_tokens` is cut there (finish reason `length`).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Sequence

from hgm.gateway.types import (
    BackendError,
    Completion,
    CompletionParams,
    Message,
    TransientBackendError,
    estimate_tokens,
)

SUBMIT_REPLY = "The script has no more replies, so I submit.\n\n```bash\nsubmit\n```"
DEFAULT_KEY = "default"
PRICES_KEY = "prices"


def load_prices(path: Path) -> tuple[float, float] | None:
    """(dollars per prompt token, per completion token) of a script, or None when unpriced."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    prices = data.get(PRICES_KEY) if isinstance(data, dict) else None
    if not isinstance(prices, dict):
        return None
    try:
        prompt, completion = float(prices.get("prompt", 0.0)), float(prices.get("completion", 0.0))
    except (TypeError, ValueError):
        raise ValueError(f"script {path}: {PRICES_KEY} must map prompt and completion to numbers") from None
    if prompt < 0 or completion < 0:
        raise ValueError(f"script {path}: {PRICES_KEY} must not be negative")
    return prompt, completion


def load_script(path: Path) -> dict[str, list[Any]]:
    """Read a script file into {key: [entry, ...]}; raise ValueError naming what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read script {path}: {exc.strerror}") from None
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise ValueError(f"script {path} is neither JSON nor JSONL ({exc.msg})") from None
    if isinstance(data, list):
        data = {DEFAULT_KEY: data}
    if isinstance(data, dict) and isinstance(data.get(PRICES_KEY), dict):
        data = {k: v for k, v in data.items() if k != PRICES_KEY}
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"script {path} must be a list of replies or an object of such lists")
    for key, entries in data.items():
        for index, entry in enumerate(entries):
            if not _valid_entry(entry):
                raise ValueError(
                    f"script {path}: entry {key}[{index}] must be a string, "
                    '{"reply": str[, "cases": [{"contains": str, "reply": str}, ...]]} '
                    'or {"error": {"status": int, "message": str}}'
                )
    return data


class ScriptedBackend:
    """Plays back a script; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.name = f"scripted:{path}"
        self._script = load_script(path)
        self._prices = load_prices(path)
        self._cursors: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self._lock = threading.Lock()

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """The prompt tokens a call of these messages is charged (exact)."""
        return sum(estimate_tokens(m.content) + 4 for m in messages)

    def price(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Dollars of a call of that size (None: the script is unpriced)."""
        if self._prices is None:
            return None
        return prompt_tokens * self._prices[0] + completion_tokens * self._prices[1]

    def complete(self, messages: Sequence[Message], params: CompletionParams) -> Completion:
        key = self._key_for(params.tags)
        conversation = (key, tuple(sorted(params.tags.items())))
        with self._lock:
            index = self._cursors.get(conversation, 0)
            self._cursors[conversation] = index + 1
        entries = self._script.get(key, [])
        entry = entries[index] if index < len(entries) else SUBMIT_REPLY
        prompt_tokens = self.count_tokens(messages)
        if isinstance(entry, str):
            entry = {"reply": entry}
        if "error" in entry:
            status = int(entry["error"].get("status", 500))
            message = str(entry["error"].get("message", "scripted failure"))
            error_type = TransientBackendError if status == 429 or status >= 500 else BackendError
            raise error_type(message, status=status, kind="provider_error")
        reply = _reply_for(entry, messages)
        prompt_tokens = int(entry.get("prompt_tokens", prompt_tokens))
        completion_tokens = int(entry.get("completion_tokens", estimate_tokens(reply)))
        finish = "stop"
        if params.max_tokens is not None and completion_tokens > params.max_tokens:
            reply, completion_tokens, finish = reply[: 4 * params.max_tokens], params.max_tokens, "length"
        return Completion(reply, prompt_tokens, completion_tokens,
                          cost=self.price(prompt_tokens, completion_tokens) or 0.0, finish_reason=finish)

    def _key_for(self, tags: dict[str, str] | Any) -> str:
        for tag in ("task", "purpose"):
            value = tags.get(tag)
            if value is not None and value in self._script:
                return value
        return DEFAULT_KEY


def _reply_for(entry: dict[str, Any], messages: Sequence[Message]) -> str:
    """The entry's reply: that of its first case whose text the messages contain, else its own."""
    cases = entry.get("cases") or []
    if cases:
        prompt = "\n".join(m.content for m in messages)
        for case in cases:
            if case["contains"] in prompt:
                return case["reply"]
    return entry["reply"]


def _valid_entry(entry: Any) -> bool:
    if isinstance(entry, str):
        return True
    if not isinstance(entry, dict):
        return False
    if "error" in entry:
        return isinstance(entry["error"], dict)
    cases = entry.get("cases", [])
    if not isinstance(cases, list) or not all(
        isinstance(c, dict) and isinstance(c.get("contains"), str) and isinstance(c.get("reply"), str) for c in cases
    ):
        return False
    return isinstance(entry.get("reply"), str)
