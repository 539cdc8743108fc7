"""A hard dollar cap in a real run: 8 workers, a priced scripted model, the local sandbox.

The gateway reserves every call's worst case against the run's budget, so the run's
recorded spending never passes `--budget-usd`; the attempts the cap cut short are recorded
`abandoned` (not scored) and the run ends with `budget_usd`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from scripted import write_script

REPO = Path(__file__).resolve().parents[2]
TASKS = ",".join(f"hgm-mini__iniconf-{i}" for i in range(1, 7))
CAP = 0.06


@pytest.mark.e2e
@pytest.mark.slow
def test_eight_workers_never_spend_past_the_dollar_cap(tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.json", solve_sleep=0.5)
    data = json.loads(script.read_text())
    data["prices"] = {"prompt": 2e-6, "completion": 4e-6}  # ~$0.004 a call, ~$0.02 reserved
    script.write_text(json.dumps(data))
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "hgm", "run", "--run-dir", str(run_dir), "--model", f"scripted:{script}",
         "--sandbox", "local", "--tasks", TASKS, "--budget-evals", "40", "--budget-usd", str(CAP),
         "--workers", "8", "--json"],
        cwd=REPO, env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}, capture_output=True, text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["stop_reason"] == "budget_usd" and summary["status"] == "finished"
    conn = sqlite3.connect(run_dir / "hgm.db")
    try:
        spent = conn.execute("SELECT SUM(cost_usd) FROM llm_calls").fetchone()[0]
        refused = conn.execute("SELECT COUNT(*) FROM llm_calls WHERE error LIKE 'budget_exceeded:%'").fetchone()[0]
        cut = conn.execute("SELECT utility, detail FROM evaluations WHERE detail LIKE 'the run''s model budget%'"
                           ).fetchall()
        cut_expansions = conn.execute("SELECT status FROM expansions WHERE reason LIKE 'the run''s model budget%'"
                                      ).fetchall()
        measured = conn.execute("SELECT COUNT(*) FROM evaluations WHERE utility IS NOT NULL").fetchone()[0]
    finally:
        conn.close()
    assert spent <= CAP  # by no more than zero dollars
    assert spent > CAP / 3 and refused >= 1  # the cap was reached, not avoided
    assert all(utility is None for utility, _ in cut)  # cut short by the run: never scored
    assert all(status == "abandoned" for (status,) in cut_expansions)  # nor a failed expansion
    assert cut or cut_expansions  # the attempts the cap refused were recorded as such
    assert 0 < measured < 40 == summary["budget_evals"]
