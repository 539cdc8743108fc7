"""A session's set-up: state rebuilt from the archive, calls stored by the cost book, the scheduler."""

from __future__ import annotations

from pathlib import Path

from archive.records import EvalRecord, ExpansionRecord
from archive.run import Run
from hgm.gateway.costs import CostBook
from hgm.gateway.records import CallRecord
from hgm.loop.session import build_state, seed_agent_tree, store_call
from hgm.search.report import earlier_elapsed, run_summary


def new_run(tmp_path: Path) -> Run:
    seed = seed_agent_tree(tmp_path / "seed")
    return Run.create(tmp_path / "run", {"policy": {"final_quantile": 0.05}}, seed)


def test_seed_tree_is_the_installed_agent(tmp_path: Path) -> None:
    tree = seed_agent_tree(tmp_path / "s")
    assert (tree / "agent" / "__main__.py").is_file() and (tree / "agent" / "tests").is_dir()
    assert not list(tree.rglob("__pycache__"))


def test_build_state_from_archive(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    child_src = tmp_path / "child"
    seed_agent_tree(child_src)
    child = run.add_node(0, child_src, "self_improve", expansion=ExpansionRecord(0, "ok"))
    run.record_eval(EvalRecord(0, "a", "resolved"))
    run.record_eval(EvalRecord(0, "b", "unresolved"))
    run.record_eval(EvalRecord(child, "a", "error_infra"))
    run.record_eval(EvalRecord(child, "b", "abandoned"))
    run.record_eval(EvalRecord(child, "gone", "resolved"))  # a task no longer in the suite
    run.record_expansion(ExpansionRecord(child, "failed", reason="tests fail", cost_usd=0.5))
    state = build_state(run.tree(), ["a", "b", "c"], run.expansions(), run.evaluations())
    assert state.node_ids == [0, child] and state.parent_of(child) == 0
    assert state.own_counts(0) == (1, 1) and state.own_counts(child) == (0, 0)
    assert state.is_seen(0, "a") and not state.is_seen(child, "a")  # infra/abandoned pairs are free
    assert state.evals_completed == 2 and state.expansions_succeeded == 1
    assert state.expansions_failed == 1
    run.close()


def test_cost_book_records_calls_and_sums_per_job(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    book = CostBook(lambda record: store_call(run, record), preload=(1.0, 100))

    def call(job: str, cost: float, node: str = "0") -> CallRecord:
        return CallRecord(started_at=1.0, tags={"job": job, "node": node, "task": "t", "purpose": "solve"},
                          model="m", status=200, prompt_tokens=10, completion_tokens=5, cost=cost, latency_s=0.1)

    book(call("j1", 0.25))
    book(call("j1", 0.25))
    book(call("j2", 0.5, node="not-a-number"))
    assert book.job("j1") == (0.5, 30) and book.job("j2") == (0.5, 15) and book.job("none") == (0.0, 0)
    assert book.totals() == (2.0, 145)
    rows = run._read_all("SELECT node_id, task_id, purpose, cost_usd FROM llm_calls")
    assert len(rows) == 3 and rows[2]["node_id"] is None and rows[0]["purpose"] == "solve"
    summary = run_summary(run)
    assert summary["llm_calls"] == 3 and summary["cost_usd"] == 1.0 and summary["best"] is None
    run.close()


def test_earlier_sessions_elapsed(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    run.log_event("session_start", {"session": "s1"})
    run.log_event("session_end", {"session": "s1", "elapsed_s": 12.5})
    run.log_event("session_start", {"session": "s2"})  # crashed: charged up to its last record
    assert earlier_elapsed(run) == 12.5
    run.close()


def test_make_scheduler_measures_the_seed_first_and_caps_expansions() -> None:
    from hgm.config import build_config
    from hgm.loop.session import make_scheduler
    from hgm.search.state import SearchState
    from hgm.policies import Evaluate
    from hgm.policies.hgm import HGMPolicy

    def state() -> SearchState:
        st = SearchState(tuple(f"t{i}" for i in range(8)))
        st.add_node(0, None)
        return st

    capped = make_scheduler(build_config(overrides={"budget": {"evals": 10, "expansions": 3},
                                                    "policy": {"count_failed_expansions": False}}), state(), 0)
    # the older setting name (frozen in earlier runs' configs) still reads: false -> "ignore"
    assert capped.state.budget_expansions == 3 and capped.policy.config.failed_expansions == "ignore"
    config = build_config(overrides={"seed_evals": 3, "budget": {"evals": 10}, "seed": 5})
    sched = make_scheduler(config, state(), session_index=0)
    # the bare policy (the simulator runs the same one); attempts capped at the eval budget by default
    assert isinstance(sched.policy, HGMPolicy) and sched.policy.config.failed_expansions == "allowance"
    assert sched.budget_evals == 10 and sched.state.budget_expansions == 10
    jobs = [sched.dispatch() for _ in range(3)]
    assert all(j.seed and isinstance(j.action, Evaluate) and j.action.node_id == 0 for j in jobs)
