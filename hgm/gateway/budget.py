"""Spending ledger: totals per run and per tag, checked before every call."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Mapping

from hgm.gateway.config import BudgetLimit


class BudgetExceeded(Exception):
    """A call was refused because a budget is spent."""


@dataclass
class Spent:
    tokens: int = 0
    cost: float = 0.0


class BudgetLedger:
    """Counts tokens and dollars per run and per tag value; refuses calls past a limit.

    A call is refused once a total has reached its limit; the call that crosses a limit
    is allowed to finish (the gateway cannot know its size in advance), so totals may
    overshoot by one call per concurrent caller.
    """

    def __init__(self, run_limit: BudgetLimit, tag_limits: Mapping[str, BudgetLimit]) -> None:
        self._run_limit = run_limit
        self._tag_limits = dict(tag_limits)
        self._lock = threading.Lock()
        self._run = Spent()
        self._by_tag: dict[tuple[str, str], Spent] = {}

    def check(self, tags: Mapping[str, str]) -> None:
        """Raise `BudgetExceeded` naming the first spent budget that covers `tags`."""
        with self._lock:
            self._check_one("run", self._run_limit, self._run)
            for key, value in tags.items():
                spent = self._by_tag.get((key, value), Spent())
                for name in (f"{key}={value}", key):
                    limit = self._tag_limits.get(name)
                    if limit is not None:
                        self._check_one(f"{key}={value}", limit, spent)

    def add(self, tags: Mapping[str, str], tokens: int, cost: float) -> None:
        """Count a finished call (also used to preload earlier spending on resume)."""
        with self._lock:
            self._run.tokens += tokens
            self._run.cost += cost
            for item in tags.items():
                spent = self._by_tag.setdefault(item, Spent())
                spent.tokens += tokens
                spent.cost += cost

    def totals(self) -> dict[str, float]:
        """Run-wide totals so far."""
        with self._lock:
            return {"tokens": self._run.tokens, "cost": self._run.cost}

    @staticmethod
    def _check_one(scope: str, limit: BudgetLimit, spent: Spent) -> None:
        if limit.tokens is not None and spent.tokens >= limit.tokens:
            raise BudgetExceeded(
                f"token budget of {scope} is spent ({spent.tokens} of {limit.tokens} tokens)"
            )
        if limit.cost is not None and spent.cost >= limit.cost:
            raise BudgetExceeded(
                f"cost budget of {scope} is spent (${spent.cost:.4f} of ${limit.cost:.4f})"
            )
