"""Cost accounting: every call the gateway records, summed per job and per run.

`CostBook` is the gateway's recorder for `hgm run` and `hgm eval` alike. It sums tokens
and dollars per run and per job (the call's `job` tag), remembers each job's provider
failures and refusals by the run's budget (a job that met one is not a fair measurement
of the agent), and passes each record on to an optional sink (the run's archive); a
failing sink never loses the totals.
"""

from __future__ import annotations

import threading
from typing import Callable

from hgm.gateway.records import CallRecord, provider_failure, run_budget_refusal

Sink = Callable[[CallRecord], None]


class CostBook:
    """Sums what the gateway reports: per run (`totals`) and per job tag (`job`)."""

    def __init__(self, sink: Sink | None = None, preload: tuple[float, int] = (0.0, 0)) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._by_job: dict[str, tuple[float, int]] = {}
        self._failures: dict[str, list[str]] = {}
        self._refused: dict[str, str] = {}
        self._cost, self._tokens = preload
        self.sink_errors = 0

    def __call__(self, record: CallRecord) -> None:
        tokens = record.prompt_tokens + record.completion_tokens
        cost = float(record.cost or 0.0)
        job = record.tags.get("job")
        failure = provider_failure(record)
        refusal = run_budget_refusal(record)
        with self._lock:
            self._cost += cost
            self._tokens += tokens
            if job:
                old_cost, old_tokens = self._by_job.get(job, (0.0, 0))
                self._by_job[job] = (old_cost + cost, old_tokens + tokens)
                if failure:
                    self._failures.setdefault(job, []).append(failure)
                if refusal:
                    self._refused.setdefault(job, refusal)
        if self._sink is None:
            return
        try:
            self._sink(record)
        except Exception:  # noqa: BLE001 - the archive may be closing; the totals still count
            with self._lock:
                self.sink_errors += 1

    def job(self, key: str) -> tuple[float, int]:
        """Dollars and tokens of job `key` so far."""
        with self._lock:
            return self._by_job.get(key, (0.0, 0))

    def provider_failures(self, key: str) -> list[str]:
        """Messages of job `key`'s calls that failed for the provider's reasons (oldest first)."""
        with self._lock:
            return list(self._failures.get(key, ()))

    def run_budget_refused(self, key: str) -> str | None:
        """The refusal message when a call of job `key` was refused by the run's budget."""
        with self._lock:
            return self._refused.get(key)

    def totals(self) -> tuple[float, int]:
        """Dollars and tokens of the whole run so far (earlier sessions included)."""
        with self._lock:
            return self._cost, self._tokens
