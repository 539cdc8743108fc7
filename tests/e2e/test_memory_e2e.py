"""End to end: two `hgm run --memory BANK` runs with a scripted model share what they learned.

The first run distils an item for each decided expansion and copies them to the bank; the
second run's diagnoses are shown them (its `memory_uses` names the first run's items) and
both runs' items end up in the bank, listed by `hgm memory`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from run_db import rows
from scripted import write_script
from test_run_e2e import TASKS, hgm


def run_with_bank(tmp_path: Path, name: str, bank: Path) -> dict:
    script = write_script(tmp_path / "script.json")
    done = hgm("run", "--run-dir", str(tmp_path / name), "--model", f"scripted:{script}", "--sandbox", "local",
               "--tasks", TASKS, "--budget-evals", "4", "--workers", "1", "--seed", "3", "--memory", str(bank),
               "--json")
    return json.loads(done.stdout)


@pytest.mark.e2e
@pytest.mark.slow
def test_a_second_run_is_shown_the_first_runs_items(tmp_path: Path) -> None:
    bank = tmp_path / "lessons.db"
    first = run_with_bank(tmp_path, "a", bank)
    assert first["memory"]["items"] >= 1 and first["memory"]["from_other_runs"] == 0
    items_a = {r[0] for r in rows(tmp_path / "a", "SELECT uid FROM memory")}
    distill = rows(tmp_path / "a", "SELECT COUNT(*) FROM llm_calls WHERE purpose = 'distill'")[0][0]
    assert distill >= len(items_a)  # every item was asked of the model through the gateway (then fell back)
    second = run_with_bank(tmp_path, "b", bank)
    shown = {r[0] for r in rows(tmp_path / "b", "SELECT uid FROM memory_uses")}
    assert shown & items_a, "the second run's diagnoses were not shown the first run's items"
    assert second["memory"]["from_other_runs"] >= 1
    listed = json.loads(hgm("memory", str(bank), "--json").stdout)
    assert items_a <= {i["uid"] for i in listed} and len({i["run_key"] for i in listed}) == 2
