"""Retrying transient provider errors with exponential backoff (tenacity)."""

from __future__ import annotations

from typing import Callable, TypeVar

from hgm.gateway.types import TransientBackendError

T = TypeVar("T")


def call_with_retries(
    call: Callable[[], T], attempts: int, initial_wait: float, max_wait: float
) -> tuple[T, int]:
    """Run `call`, retrying `TransientBackendError` up to `attempts` tries in all.

    Returns the result and the number of tries used; re-raises the last error.
    """
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

    retrying = Retrying(
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_exponential(multiplier=initial_wait, max=max_wait) + wait_random(0, initial_wait),
        retry=retry_if_exception_type(TransientBackendError),
        reraise=True,
    )
    tries = 0
    for attempt in retrying:
        with attempt:
            tries += 1
            result = call()
    return result, tries
