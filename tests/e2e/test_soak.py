"""Crash soak in CI: SIGKILL a scripted evolution at 5 seeded moments, resume after each.

The harness (`soak_harness.py`, also behind `benchmarks/soak.py --kills 20`) checks what
must survive every kill: an intact database, exactly the budget measured, no pair twice,
nothing finished lost, branches = nodes, and nothing of the run left behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from soak_harness import report_json, soak


@pytest.mark.e2e
@pytest.mark.slow
def test_five_kills_and_resumes_lose_nothing_and_leave_nothing(tmp_path: Path) -> None:
    report = soak(tmp_path, kills=5, seed=20, budget_step=8, workers=2, sandbox="local", solve_sleep=0.3)
    assert report.problems() == [], report_json(report)
    figures = report.figures()
    assert figures["kills"] == 5 and figures["kills_survived"] == 5
    assert set(figures["kills_by_phase"]) == {"start-up", "evaluation", "expansion", "acceptance", "archive"}
    assert figures["measured"] == figures["budget_evals"] >= 8
