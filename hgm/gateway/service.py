"""The gateway's logic, independent of HTTP: validate, budget, call with retries, record.

Tags: a call that arrives on a sandbox's own socket carries that socket's identity (the
tags the loop gave it when it opened the sandbox); whatever the agent sends in
`X-HGM-Tags` is ignored, so model-written code cannot bill its calls to another job.
Only calls on the gateway's main socket (hgm's own calls, host tools) take their tags
from the header.

Budgets: when a call falls under a budget, its worst case (see `hgm.gateway.estimate`) is
reserved before it goes out and settled with its real cost afterwards, so concurrent
calls cannot overshoot a cap.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from typing import Any, Callable, Mapping

from hgm.gateway.budget import BudgetExceeded, BudgetLedger, Reservation
from hgm.gateway.config import GatewayConfig
from hgm.gateway.estimate import needs_reservation, worst_case
from hgm.gateway.protocol import (
    RequestError,
    clean_text,
    completion_body,
    error_body,
    messages_hash,
    parse_chat_request,
    parse_tags,
)
from hgm.gateway.records import CallRecord, Recorder, provider_failure
from hgm.gateway.redact import redact
from hgm.gateway.retry import call_with_retries
from hgm.gateway.types import Backend, BackendError, Completion, CompletionParams

BUDGET_STATUS = 402  # not 429: generic clients retry 429, but a spent budget stays spent


class ChatService:
    """Answers chat-completions requests; one instance per gateway, shared by all threads."""

    def __init__(
        self,
        config: GatewayConfig,
        recorder: Recorder,
        backend_for: Callable[[str], Backend],
        ledger: BudgetLedger,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self._recorder = recorder
        self._backend_for = backend_for
        self._record_lock = threading.Lock()
        # job tag -> the provider failure it met: the rest of that attempt fails fast
        self._broken_jobs: dict[str, str] = {}

    def handle(
        self, body: bytes, tags_header: str | None, identity: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Answer one request: (HTTP status, JSON body). Never raises.

        `identity`: the tags of the socket the call came in on (None: the main socket,
        whose callers name their tags in the header).
        """
        started_at, t0 = time.time(), time.perf_counter()
        record = CallRecord(started_at=started_at, tags={}, model=self.config.model, status=0)
        try:
            tags = dict(identity) if identity is not None else parse_tags(tags_header)
            tags.update(self.config.run_tags)
            record = dataclasses.replace(record, tags=tags)
            request = parse_chat_request(body, tags)
        except RequestError as exc:
            return self._fail(record, t0, exc.status, exc.message, exc.kind)
        spec = self.config.aliases.get(request.model, self.config.model)
        params = self._with_defaults(request.params)
        record = dataclasses.replace(record, model=spec, messages_hash=messages_hash(request.messages))
        try:
            self.ledger.check(tags)
        except BudgetExceeded as exc:
            return self._fail(record, t0, BUDGET_STATUS, str(exc), "budget_exceeded")
        broken = self._broken_jobs.get(tags.get("job", ""))
        if broken is not None:  # retried already; the attempt will not be scored anyway
            return self._fail(record, t0, 503, f"the provider failed earlier in this attempt: {broken}", "provider_error")
        try:
            backend = self._backend_for(spec)
        except BackendError as exc:
            self._remember_failure(tags, exc.status, exc.kind, exc.message)
            return self._fail(record, t0, exc.status, exc.message, exc.kind)
        reservation: Reservation | None = None
        try:
            if needs_reservation(backend, self.ledger.limits_for(tags)):
                params, tokens, cost = worst_case(backend, request.messages, params)
                reservation = self.ledger.reserve(tags, tokens, cost)
        except BudgetExceeded as exc:
            return self._fail(record, t0, BUDGET_STATUS, str(exc), "budget_exceeded")
        attempts = 0
        completion: Completion | None = None
        try:

            def call() -> Completion:
                nonlocal attempts
                attempts += 1
                return backend.complete(request.messages, params)

            completion, _ = call_with_retries(
                call,
                self.config.retry_attempts,
                self.config.retry_initial_wait,
                self.config.retry_max_wait,
            )
        except BackendError as exc:
            record = dataclasses.replace(record, attempts=attempts)
            status, body = self._fail(record, t0, exc.status, exc.message, exc.kind)
            self._remember_failure(tags, status, exc.kind, exc.message)
            return status, body
        except Exception as exc:  # noqa: BLE001 - a backend bug must not kill the server
            record = dataclasses.replace(record, attempts=attempts)
            message = f"backend {spec} failed: {exc.__class__.__name__}: {exc}"
            self._remember_failure(tags, 500, "internal_error", message)
            return self._fail(record, t0, 500, message, "internal_error")
        finally:
            if completion is None and reservation is not None:
                self.ledger.release(reservation)
        tokens = completion.prompt_tokens + completion.completion_tokens
        if reservation is not None:
            self.ledger.settle(reservation, tokens, completion.cost)
        else:
            self.ledger.add(tags, tokens, completion.cost)
        text = clean_text(completion.text)  # e.g. half an emoji from a provider: not encodable as UTF-8
        completion = dataclasses.replace(completion, text=text)
        self._emit(
            dataclasses.replace(
                record,
                status=200,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                cost=completion.cost,
                latency_s=time.perf_counter() - t0,
                attempts=attempts,
                response=text,
                finish_reason=completion.finish_reason,
            )
        )
        return 200, completion_body(completion, request.model or self.config.alias)

    def _remember_failure(self, tags: Mapping[str, str], status: int, kind: str, message: str) -> None:
        """Mark the call's job as broken when the provider (not the caller) failed it."""
        job = tags.get("job")
        failure = provider_failure(CallRecord(0.0, dict(tags), "", status, error=f"{kind}: {message}"))
        if job and failure:
            self._broken_jobs[job] = redact(failure)[:300]

    def _with_defaults(self, params: CompletionParams) -> CompletionParams:
        config = self.config
        max_tokens = params.max_tokens if params.max_tokens is not None else config.default_max_tokens
        if config.max_tokens_cap is not None:
            max_tokens = min(max_tokens or config.max_tokens_cap, config.max_tokens_cap)
        return dataclasses.replace(
            params,
            max_tokens=max_tokens,
            temperature=params.temperature if params.temperature is not None else config.temperature,
            seed=params.seed if params.seed is not None else config.seed,
        )

    def _fail(
        self, record: CallRecord, t0: float, status: int, message: str, kind: str
    ) -> tuple[int, dict[str, Any]]:
        message = redact(message)
        self._emit(
            dataclasses.replace(
                record, status=status, latency_s=time.perf_counter() - t0, error=f"{kind}: {message}"
            )
        )
        return status, error_body(message, kind)

    def _emit(self, record: CallRecord) -> None:
        try:
            with self._record_lock:
                self._recorder(record)
        except Exception as exc:  # noqa: BLE001 - a broken sink must not fail the call
            print(f"hgm gateway: recorder failed: {exc!r}", file=sys.stderr)
