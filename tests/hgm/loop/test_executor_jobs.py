"""Job-runner plumbing: state rebuilt from the archive, cost book, LLM access, sandbox tracking."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

from archive.records import EvalRecord, ExpansionRecord
from archive.run import Run
from hgm.loop.jobs import CostBook, LLMAccess, TrackingBackend, rel
from hgm.loop.runner import build_state, seed_agent_tree
from hgm.loop.summary import earlier_elapsed, run_summary


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
    assert [f.reason for f in state.failed_expansions] == ["tests fail"]
    run.close()


def test_cost_book_records_calls_and_sums_per_job(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    book = CostBook(run, threading.RLock(), preload=(1.0, 100))

    def call(job: str, cost: float, node: str = "0") -> SimpleNamespace:
        return SimpleNamespace(tags={"job": job, "node": node, "task": "t", "purpose": "solve"}, prompt_tokens=10,
                               completion_tokens=5, cost=cost, model="m", latency_s=0.1, error=None, started_at=1.0)

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


def test_llm_access_never_leaks_host_environment() -> None:
    local = LLMAccess("/tmp/gw/llm.sock", "hgm", "local").for_sandbox({"task": "t1", "node": 3})
    assert local.env["HGM_LLM_URL"] == "/tmp/gw/llm.sock" and not local.mounts
    assert json.loads(local.env["HGM_LLM_TAGS"]) == {"node": "3", "task": "t1"}
    assert "HOME" not in local.env and not any("KEY" in k for k in local.env)
    docker = LLMAccess("/tmp/gw/llm.sock", "hgm", "docker").for_sandbox({})
    assert docker.env["HGM_LLM_URL"] == "/hgm-gateway/llm.sock" and docker.env["HOME"] == "/tmp"
    assert docker.mounts[0].source == "/tmp/gw" and docker.mounts[0].read_only


def test_tracking_backend_closes_everything_and_refuses_new_sandboxes() -> None:
    closed = []

    class Session:
        def __init__(self, n):
            self.n = n

        def close(self):
            closed.append(self.n)

        def exec(self, *a, **k):
            return "ran"

    class Inner:
        name = "fake"
        count = 0

        def open(self, spec):
            Inner.count += 1
            return Session(Inner.count)

    backend = TrackingBackend(Inner())
    with backend.open(None) as s1:
        assert s1.exec("x") == "ran"
    backend.open(None)
    backend.open(None)
    backend.close_all()
    assert sorted(closed) == [1, 2, 3]
    try:
        backend.open(None)
    except Exception as exc:  # noqa: BLE001
        assert "abandoned" in str(exc)
    else:
        raise AssertionError("a cancelled backend opened a sandbox")


def test_rel_paths_and_elapsed(tmp_path: Path) -> None:
    assert rel(tmp_path, tmp_path / "a" / "b") == "a/b"
    assert rel(tmp_path, Path("/elsewhere/x")) == "/elsewhere/x"
    assert rel(tmp_path, None) is None
    run = new_run(tmp_path)
    run.log_event("session_start", {"session": "s1"})
    run.log_event("session_end", {"session": "s1", "elapsed_s": 12.5})
    run.log_event("session_start", {"session": "s2"})  # crashed: charged up to its last record
    assert earlier_elapsed(run) == 12.5
    run.close()


def test_live_display_renders_progress() -> None:
    import io

    from rich.console import Console

    from hgm.loop.display import LiveDisplay, _render, best_line
    from hgm.loop.executor import Progress
    from hgm.loop.state import SearchState

    state = SearchState(("a", "b", "c"))
    state.add_node(0, None)
    state.add_node(1, 0)
    state.record_eval(0, "a", False, in_flight=False)
    state.record_eval(1, "a", True, in_flight=False)
    state.record_eval(1, "b", True, in_flight=False)
    view = state.view()
    assert best_line(view, "best-belief", 0.05).startswith("node 1: 2/2 resolved")
    assert best_line(None, "lineage", 0.05) == "-"
    progress = Progress(3, 1, 10, 2, 1, 0, 0, 0.0123, 4567, 12.0, [("w0", "eval node 1 on c", 3.0)], "interrupted", view)
    console = Console(file=io.StringIO(), width=120)
    console.print(_render(progress, best_line(view, "best-belief", 0.05)))
    text = console.file.getvalue()
    assert "3 done + 1 running / budget 10" in text and "$0.0123" in text and "Ctrl-C again" in text
    plain = LiveDisplay("lineage", 0.05, enabled=False)
    plain(progress)  # plain lines on stderr; must not raise


def test_make_scheduler_measures_the_seed_first_and_caps_expansions() -> None:
    from hgm.config import build_config
    from hgm.loop.runner import make_scheduler
    from hgm.loop.state import SearchState
    from hgm.policies import Evaluate
    from hgm.policies.hgm import HGMPolicy

    def state() -> SearchState:
        st = SearchState(tuple(f"t{i}" for i in range(8)))
        st.add_node(0, None)
        return st

    capped = make_scheduler(build_config(overrides={"budget": {"evals": 10, "expansions": 3},
                                                    "policy": {"count_failed_expansions": False}}), state(), 0)
    assert capped.state.budget_expansions == 3 and capped.policy.config.count_failed_expansions is False
    config = build_config(overrides={"seed_evals": 3, "budget": {"evals": 10}, "seed": 5})
    sched = make_scheduler(config, state(), session_index=0)
    # the bare policy (the simulator runs the same one); attempts capped at the eval budget by default
    assert isinstance(sched.policy, HGMPolicy) and sched.policy.config.count_failed_expansions
    assert sched.budget_evals == 10 and sched.state.budget_expansions == 10
    jobs = [sched.dispatch() for _ in range(3)]
    assert all(j.seed and isinstance(j.action, Evaluate) and j.action.node_id == 0 for j in jobs)
