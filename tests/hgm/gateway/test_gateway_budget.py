"""The spending ledger: run-wide and per-tag limits on tokens and dollars."""

from __future__ import annotations

import pytest

from hgm.gateway.budget import BudgetExceeded, BudgetLedger
from hgm.gateway.config import BudgetLimit


def test_run_token_limit_refuses_once_reached() -> None:
    ledger = BudgetLedger(BudgetLimit(tokens=100), {})
    ledger.check({})
    ledger.add({}, 99, 0.0)
    ledger.check({})
    ledger.add({}, 5, 0.0)
    with pytest.raises(BudgetExceeded, match="token budget of run"):
        ledger.check({"node": "1"})


def test_per_tag_limits_apply_to_each_value_separately() -> None:
    ledger = BudgetLedger(BudgetLimit(), {"node": BudgetLimit(cost=1.0), "purpose=diagnose": BudgetLimit(tokens=10)})
    ledger.add({"node": "1", "purpose": "solve"}, 5, 1.5)
    with pytest.raises(BudgetExceeded, match=r"cost budget of node=1"):
        ledger.check({"node": "1"})
    ledger.check({"node": "2", "purpose": "solve"})  # another node has its own budget
    ledger.add({"node": "2", "purpose": "diagnose"}, 10, 0.0)
    with pytest.raises(BudgetExceeded, match="purpose=diagnose"):
        ledger.check({"node": "3", "purpose": "diagnose"})
    ledger.check({"node": "3", "purpose": "solve"})
    assert ledger.totals() == {"tokens": 15, "cost": 1.5}
