"""The cost book: totals per run and job, and which failures are the provider's."""

from __future__ import annotations

from hgm.gateway.costs import CostBook
from hgm.gateway.records import CallRecord, provider_failure


def record(status: int, error: str | None = None, job: str = "j1", cost: float = 0.0) -> CallRecord:
    return CallRecord(started_at=0.0, tags={"job": job}, model="m", status=status, error=error, cost=cost,
                      prompt_tokens=3, completion_tokens=2)


def test_provider_failures_are_told_apart_from_the_callers_own() -> None:
    assert provider_failure(record(401, "authentication_error: bad key")) == "bad key"
    assert provider_failure(record(503, "provider_error: ServiceUnavailableError: down")) == "ServiceUnavailableError: down"
    assert provider_failure(record(500, "model_unavailable: no such model")) == "no such model"
    assert provider_failure(record(500, "internal_error: backend crashed")) == "backend crashed"
    # the caller's doing, or no failure at all
    assert provider_failure(record(200)) is None
    assert provider_failure(record(402, "budget_exceeded: cost budget of job=j1 is spent")) is None
    assert provider_failure(record(400, "invalid_request_error: messages must be a list")) is None
    assert provider_failure(record(400, "provider_error: ContextWindowExceededError: too long")) is None


def test_cost_book_sums_per_job_and_keeps_provider_failures_per_job() -> None:
    stored = []
    book = CostBook(stored.append, preload=(1.0, 10))
    book(record(200, job="a", cost=0.5))
    book(record(503, "provider_error: down", job="a"))
    book(record(200, job="b", cost=0.25))
    assert book.job("a") == (0.5, 10) and book.job("b") == (0.25, 5)
    assert book.totals() == (1.75, 25)
    assert book.provider_failures("a") == ["down"] and book.provider_failures("b") == []
    assert len(stored) == 3


def test_a_failing_sink_loses_no_totals() -> None:
    def broken(_: CallRecord) -> None:
        raise OSError("disk full")

    book = CostBook(broken)
    book(record(200, cost=1.0))
    assert book.totals() == (1.0, 5) and book.sink_errors == 1
