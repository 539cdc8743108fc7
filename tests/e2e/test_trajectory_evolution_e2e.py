"""End to end: `hgm run` with attempts per evaluation and a mix of expansion operators.

The run config asks for 2 attempts x 2 generations per evaluation and expansions drawn
from revise, recombine and refine. The scripted model solves one mini task and
self-improves harmlessly. The archive must hold every attempt of every evaluation (with its
operator and selection features), expansions with their operators, and the run must end
on its evaluation budget like any other.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from run_db import rows
from scripted import write_script
from test_run_e2e import TASKS, hgm


@pytest.mark.e2e
@pytest.mark.slow
def test_run_with_attempts_and_operator_mix(tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.json")
    config = tmp_path / "run.toml"
    config.write_text('[evaluation]\nattempts = 2\ngenerations = 2\n'
                      '[evolve.operators]\nrevise = 1\nrecombine = 1\nrefine = 1\n')
    run_dir = tmp_path / "run"
    done = hgm("run", "--config", str(config), "--run-dir", str(run_dir), "--model", f"scripted:{script}",
               "--sandbox", "local", "--tasks", TASKS, "--budget-evals", "6", "--workers", "2", "--seed", "1", "--json")
    summary = json.loads(done.stdout)
    assert summary["status"] == "finished" and summary["stop_reason"] == "budget_evals"
    evals = rows(run_dir, "SELECT id, status FROM evaluations WHERE utility IS NOT NULL")
    assert len(evals) == 6
    attempts = rows(run_dir, "SELECT evaluation_id, idx, generation, operator, parents, selected, features FROM attempts")
    by_eval: dict[int, list[tuple]] = {}
    for row in attempts:
        by_eval.setdefault(row[0], []).append(row)
    assert set(by_eval) == {e[0] for e in evals}  # every measured evaluation kept its attempts
    for eval_rows in by_eval.values():
        assert [(r[1], r[2]) for r in eval_rows] == [(1, 1), (2, 1), (3, 2), (4, 2)]
        assert [r[3] for r in eval_rows] == ["sample", "sample", "refine", "recombine"]
        assert sum(r[5] for r in eval_rows) == 1 and all("valid" in json.loads(r[6]) for r in eval_rows)
        assert json.loads(eval_rows[3][4]) and len(json.loads(eval_rows[3][4])) == 2
    purposes = {r[0] for r in rows(run_dir, "SELECT DISTINCT purpose FROM llm_calls")}
    assert {"solve", "summarize", "refine", "recombine"} <= purposes
    operators = {r[0] for r in rows(run_dir, "SELECT operator FROM expansions")}
    assert operators and operators <= {"revise", "recombine", "refine"}
    nodes = rows(run_dir, "SELECT id, operator, second_parent_id FROM nodes WHERE id > 0")
    assert all(op in ("revise", "recombine", "refine") for _, op, _ in nodes)
    assert all((second is not None) == (op == "recombine") for _, op, second in nodes)
