"""Spending ledger: totals per run and per tag, with reservations that make the caps hard.

Before a call goes out the gateway reserves its worst case (prompt tokens counted,
completion capped by `max_tokens`, priced by the backend); a call whose reservation
would cross a cap (calls in flight count) is refused. When the call returns, its
reservation is settled with what it really cost. As long as a backend prices and counts
no higher than its estimate, spending never crosses a cap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Mapping

from hgm.gateway.config import BudgetLimit

RUN_SCOPE = "run"


class BudgetExceeded(Exception):
    """A call was refused because a budget is spent (or would be crossed by the call)."""

    def __init__(self, message: str, scope: str) -> None:
        super().__init__(message)
        self.scope = scope  # "run", or "KEY=VALUE" of the tag whose budget refused it


def refused_by_run_budget(message: str) -> bool:
    """True if a refusal message (as the gateway words it) names the run's own budget."""
    return f" budget of {RUN_SCOPE} " in f" {message} "


@dataclass
class Spent:
    tokens: int = 0
    cost: float = 0.0


@dataclass
class Reservation:
    """What one call in flight holds of each budget it falls under."""

    tags: dict[str, str]
    tokens: int
    cost: float
    open: bool = field(default=True)


class BudgetLedger:
    """Counts tokens and dollars per run and per tag value; refuses calls past a limit.

    `reserve` before a call, `settle` (or `release`) after it: a reservation that would
    take spent + in flight past a limit is refused. `check` refuses once a total has
    reached its limit; `add` counts spending that was not reserved (e.g. earlier sessions).
    """

    def __init__(self, run_limit: BudgetLimit, tag_limits: Mapping[str, BudgetLimit]) -> None:
        self._run_limit = run_limit
        self._tag_limits = dict(tag_limits)
        self._lock = threading.Lock()
        self._run = Spent()
        self._run_held = Spent()
        self._by_tag: dict[tuple[str, str], Spent] = {}
        self._held_by_tag: dict[tuple[str, str], Spent] = {}
        self._open = 0  # reservations not yet settled

    # ------------------------------------------------------------------ queries
    def limits_for(self, tags: Mapping[str, str]) -> list[tuple[str, BudgetLimit, tuple[str, str] | None]]:
        """(scope, limit, tag item or None for the run) of every budget a call with `tags` falls under."""
        found: list[tuple[str, BudgetLimit, tuple[str, str] | None]] = []
        if self._run_limit.tokens is not None or self._run_limit.cost is not None:
            found.append((RUN_SCOPE, self._run_limit, None))
        for key, value in tags.items():
            for name in (f"{key}={value}", key):
                limit = self._tag_limits.get(name)
                if limit is not None:
                    found.append((f"{key}={value}", limit, (key, value)))
        return found

    def totals(self) -> dict[str, float]:
        """Run-wide totals so far (settled calls; calls in flight are in `in_flight`)."""
        with self._lock:
            return {"tokens": self._run.tokens, "cost": self._run.cost}

    def in_flight(self) -> dict[str, float]:
        """What calls in flight hold of the run's budget."""
        with self._lock:
            return {"tokens": self._run_held.tokens, "cost": self._run_held.cost}

    # ------------------------------------------------------------------ checks
    def check(self, tags: Mapping[str, str]) -> None:
        """Raise `BudgetExceeded` naming the first spent budget that covers `tags`."""
        with self._lock:
            for scope, limit, item in self.limits_for(tags):
                spent, held = self._pair(item)
                self._refuse_if(scope, limit, spent, held, Spent())

    def reserve(self, tags: Mapping[str, str], tokens: int, cost: float) -> Reservation:
        """Hold `tokens` and `cost` of every budget covering `tags`, or raise BudgetExceeded."""
        ask = Spent(int(tokens), float(cost))
        with self._lock:
            covering = self.limits_for(tags)
            for scope, limit, item in covering:
                spent, held = self._pair(item)
                self._refuse_if(scope, limit, spent, held, ask)
            reservation = Reservation(dict(tags), ask.tokens, ask.cost)
            self._hold(reservation, +1)
        return reservation

    def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        """The call is over: drop its hold and count what it really cost."""
        with self._lock:
            if reservation.open:
                self._hold(reservation, -1)
                reservation.open = False
        self.add(reservation.tags, tokens, cost)

    def release(self, reservation: Reservation) -> None:
        """The call cost nothing (failed before or at the provider): drop its hold."""
        self.settle(reservation, 0, 0.0)

    def add(self, tags: Mapping[str, str], tokens: int, cost: float) -> None:
        """Count a finished call (also used to preload earlier spending on resume)."""
        with self._lock:
            self._run.tokens += tokens
            self._run.cost += cost
            for item in tags.items():
                spent = self._by_tag.setdefault(item, Spent())
                spent.tokens += tokens
                spent.cost += cost

    # ------------------------------------------------------------------ internals (hold the lock)
    def _pair(self, item: tuple[str, str] | None) -> tuple[Spent, Spent]:
        if item is None:
            return self._run, self._run_held
        return self._by_tag.get(item, Spent()), self._held_by_tag.get(item, Spent())

    def _hold(self, reservation: Reservation, sign: int) -> None:
        self._open += sign
        self._run_held.tokens += sign * reservation.tokens
        self._run_held.cost += sign * reservation.cost
        if self._open == 0:  # nothing in flight: no rounding residue either
            self._run_held, self._held_by_tag = Spent(), {}
            return
        for item in reservation.tags.items():
            held = self._held_by_tag.setdefault(item, Spent())
            held.tokens += sign * reservation.tokens
            held.cost += sign * reservation.cost
            if held.tokens == 0 and abs(held.cost) < 1e-12:
                del self._held_by_tag[item]

    @staticmethod
    def _refuse_if(scope: str, limit: BudgetLimit, spent: Spent, held: Spent, ask: Spent) -> None:
        for kind, attr, show in (("token", "tokens", _tokens), ("cost", "cost", _dollars)):
            cap = getattr(limit, attr)
            if cap is None:
                continue
            used, holding, wanted = getattr(spent, attr), getattr(held, attr), getattr(ask, attr)
            total = used + holding
            in_flight = f"; {show(holding)} held by calls in flight" if holding else ""
            if total >= cap:
                raise BudgetExceeded(f"{kind} budget of {scope} is spent ({show(used)} of {show(cap)}{in_flight})", scope)
            if wanted and total + wanted > cap:
                raise BudgetExceeded(f"{kind} budget of {scope} would be crossed: this call may take up to "
                                     f"{show(wanted)}, {show(cap - total)} is left of {show(cap)}{in_flight}", scope)


def _tokens(amount: float) -> str:
    return f"{int(amount)} tokens"


def _dollars(amount: float) -> str:
    return f"${amount:.4f}"
