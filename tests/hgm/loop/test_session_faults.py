"""Session faults: leftovers of a killed session are found and removed; budgets can be raised."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from archive.records import EvalRecord
from archive.run import Run
from hgm.config import build_config
from hgm.loop.budgets import BUDGET_EVENT, BudgetError, effective_config, extend_budgets
from hgm.loop.leftovers import LABEL_RUN_DIR, gateway_dir, remove_leftovers, run_key, session_tempdir, temp_root
from hgm.loop.session import seed_agent_tree
from sandbox.api import SandboxSpec
from sandbox.local_backend import LocalBackend


def new_run(tmp_path: Path, **overrides) -> tuple[Run, object]:
    config = build_config(overrides={"model": "scripted:x.json", **overrides})
    seed = seed_agent_tree(tmp_path / "seed")
    return Run.create(tmp_path / "run", config.frozen(), seed), config


def test_the_run_key_is_stable_and_tells_runs_apart(tmp_path: Path) -> None:
    assert run_key(tmp_path / "a") == run_key(tmp_path / "x" / ".." / "a") != run_key(tmp_path / "b")
    assert len(str(gateway_dir(tmp_path / "a") / "id-12345678" / "llm.sock")) < 107


def test_leftovers_of_a_killed_session_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_path = tmp_path / "run"
    run_path.mkdir()
    root = temp_root(run_path, tmp_path / "systemtmp")
    sockets = gateway_dir(run_path)
    # the killed session: its temp folder was the run's root; a local sandbox with a process still running
    root.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    backend = LocalBackend()
    box = backend.open(SandboxSpec(labels={LABEL_RUN_DIR: str(run_path.resolve()), "hgm.purpose": "solve"}))
    other = backend.open(SandboxSpec(labels={LABEL_RUN_DIR: "/somewhere/else"}))
    box._finalizer.detach(), other._finalizer.detach()  # kill -9: nothing gets closed
    orphan = subprocess.Popen(["sleep", "300"], env={"PATH": os.environ["PATH"], "TMPDIR": str(box.root / "tmp")},
                              start_new_session=True)
    (root / "hgm-index-abc").mkdir()  # a git index a kill -9 left
    sockets.mkdir(exist_ok=True)
    (sockets / "llm.sock").write_text("")
    monkeypatch.undo()
    try:
        with session_tempdir(root):  # the next session, holding the run's lock
            removed, problem = remove_leftovers(run_path, LocalBackend(), root)
            assert problem is None
            assert f"sandbox {box.root.name}" in removed and f"gateway {sockets.name}" in removed
            assert not box.root.exists() and not sockets.exists() and not (root / "hgm-index-abc").exists()
            assert orphan.wait(10) == -signal.SIGKILL  # its process went with it
    finally:
        if orphan.poll() is None:
            orphan.kill()
    assert not root.exists() and tempfile.tempdir != str(root)  # a session's own temp root goes when it ends


def test_a_backend_that_cannot_clean_up_is_reported_not_fatal(tmp_path: Path) -> None:
    class EngineDown:
        def remove_leftovers(self, labels):
            raise ConnectionError("connection refused")

    root = tmp_path / "t"
    root.mkdir()
    removed, problem = remove_leftovers(tmp_path / "run", EngineDown(), root)
    assert removed == [] and "hgm sandbox gc --run run" in problem


def test_budgets_are_raised_with_an_event_and_apply_on_resume(tmp_path: Path) -> None:
    run, config = new_run(tmp_path, budget={"evals": 4, "usd": 1.0})
    for i in range(4):
        run.record_eval(EvalRecord(0, f"t{i}", "unresolved"))
    with pytest.raises(BudgetError, match="--budget-evals 4 leaves nothing to do"):
        extend_budgets(run, config, evals=4)
    assert run.events(BUDGET_EVENT) == []
    extended = extend_budgets(run, config, evals=10, usd=2.5)
    assert extended.budget.evals == 10 and extended.budget.usd == 2.5
    [event] = run.events(BUDGET_EVENT)
    assert event["payload"]["before"] == {"evals": 4, "usd": 1.0}
    assert run.config["budget"]["evals"] == 4  # the frozen config stays as created
    again = effective_config(run)
    assert again.budget.evals == 10 and again.budget.usd == 2.5 and again.model == config.model
    extend_budgets(run, again, wall_clock_s=3600)
    latest = effective_config(run)
    assert (latest.budget.evals, latest.budget.usd, latest.budget.wall_clock_s) == (10, 2.5, 3600)
    run.close()


def test_a_budget_raise_that_breaks_the_config_is_refused(tmp_path: Path) -> None:
    run, config = new_run(tmp_path, budget={"evals": 4}, seed_evals=3)
    with pytest.raises(BudgetError):
        extend_budgets(run, config, evals=2)  # below what is used: nothing recorded
    assert run.events(BUDGET_EVENT) == []
    run.close()


def test_the_wall_clock_used_counts_against_a_raised_time_budget(tmp_path: Path) -> None:
    run, config = new_run(tmp_path, budget={"wall_clock_s": 100})
    run.log_event("session_start", {"session": "s1"})
    run.log_event("session_end", {"session": "s1", "elapsed_s": 100.0})
    with pytest.raises(BudgetError, match="--budget-time 90 leaves nothing to do"):
        extend_budgets(run, config, wall_clock_s=90)
    assert extend_budgets(run, config, wall_clock_s=160).budget.wall_clock_s == 160
    run.close()
