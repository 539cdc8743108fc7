"""The worst case of one call, reserved against the budgets before it goes out.

Backends may offer (all optional):
* `count_tokens(messages) -> int`: the prompt's exact token count;
* `price(prompt_tokens, completion_tokens) -> float | None`: dollars (None: unknown price);
* `max_output_tokens: int | None`: the longest completion the model can give.

Without `count_tokens` the prompt is bounded by its UTF-8 size: byte-level tokenizers
(GPT, Llama, Claude, ...) never make a token of less than one byte. The completion is
bounded by the request's `max_tokens`; a request that names none gets the model's own
limit (or DEFAULT_COMPLETION_CAP) set explicitly, so the bound holds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from hgm.gateway.types import CompletionParams, Message

DEFAULT_COMPLETION_CAP = 4096
MESSAGE_OVERHEAD = 8  # role markers and separators per message, generous for every chat template


def prompt_bound(backend: Any, messages: Sequence[Message]) -> int:
    """An upper bound of the prompt's tokens."""
    counter = getattr(backend, "count_tokens", None)
    if counter is not None:
        try:
            return int(counter(messages)) + MESSAGE_OVERHEAD
        except Exception:  # noqa: BLE001 - fall back to the byte bound
            pass
    return sum(len(m.content.encode("utf-8", "replace")) + MESSAGE_OVERHEAD for m in messages) + MESSAGE_OVERHEAD


def worst_case(backend: Any, messages: Sequence[Message], params: CompletionParams) -> tuple[CompletionParams, int, float]:
    """(params with an explicit max_tokens, most tokens, most dollars) of one call."""
    cap = params.max_tokens
    if cap is None:
        cap = getattr(backend, "max_output_tokens", None) or DEFAULT_COMPLETION_CAP
        params = dataclasses.replace(params, max_tokens=int(cap))
    prompt = prompt_bound(backend, messages)
    return params, prompt + int(cap), price(backend, prompt, int(cap))


def has_price(backend: Any) -> bool:
    """True if the backend knows what its calls cost (else they are recorded at $0)."""
    pricer = getattr(backend, "price", None)
    try:
        return pricer is not None and pricer(1, 1) is not None
    except Exception:  # noqa: BLE001
        return False


def needs_reservation(backend: Any, limits: Sequence[tuple[str, Any, Any]]) -> bool:
    """Whether a call under `limits` (BudgetLedger.limits_for) must reserve its worst case:
    a token limit always; a dollar limit only for a backend that knows its price."""
    if any(limit.tokens is not None for _, limit, _ in limits):
        return True
    return any(limit.cost is not None for _, limit, _ in limits) and has_price(backend)


def price(backend: Any, prompt_tokens: int, completion_tokens: int) -> float:
    """Dollars of a call of that size; 0 when the backend does not know its price."""
    pricer = getattr(backend, "price", None)
    if pricer is None:
        return 0.0
    try:
        return float(pricer(prompt_tokens, completion_tokens) or 0.0)
    except Exception:  # noqa: BLE001 - an unknown model costs what the provider reports (0 here)
        return 0.0
