"""Guards around evaluation and the archive: the contamination canary, secret redaction,
`hgm show` counts and flags, `hgm show --node` with the ledger, `hgm retire`."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archive import AdmissionRecord, EvalRecord, ExpansionRecord, Run
from evaluators.canary import canary_for
from hgm.cli import build_app
from hgm.evaluation.evaluate import EvalSetup, SolveLimits, evaluate
from hgm.evaluation.run_agent import AgentRun
from hgm.gateway.access import ModelAccess
from hgm.gateway.costs import CostBook
from hgm.gateway.redact import Redactor
from hgm.search.report import best_in_tree, node_rows, run_summary
from tests.archive.helpers import make_agent

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluators"))
from taskrepo_fixture import build_task_repo  # noqa: E402

KEY = "sk-proj-Zq8RtYv2Lm4Nb6Xc0Pd9We7Ka3Hs5Jf"
STUB_AGENT = textwrap.dedent('''
    import argparse, json, os, subprocess
    p = argparse.ArgumentParser()
    p.add_argument("mode"); p.add_argument("--problem"); p.add_argument("--repo"); p.add_argument("--out")
    p.add_argument("--max-steps")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.repo, "calc.py")
    source = open(path).read()
    open(path, "w").write(source.replace("return a - b", "return a + b"))
    patch = subprocess.run(["git", "diff"], cwd=a.repo, capture_output=True, text=True).stdout
    open(os.path.join(a.out, "patch.diff"), "w").write(patch)
    step = {"step": 1, "messages": [{"role": "assistant", "content": "LEAK " + KEY_OR_CANARY}]}
    open(os.path.join(a.out, "trajectory.jsonl"), "w").write(json.dumps(step) + "\\n")
    open(os.path.join(a.out, "result.json"), "w").write('{"exit_reason": "submitted", "tokens": 3}')
    print("done")
''')


def stub_agent(root: Path, leak: str) -> Path:
    (root / "agent").mkdir(parents=True)
    (root / "agent" / "__init__.py").write_text("")
    (root / "agent" / "__main__.py").write_text(STUB_AGENT.replace("KEY_OR_CANARY", repr(leak)))
    return root


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory):
    from evaluators.suite import load_suite

    return load_suite(build_task_repo(tmp_path_factory.mktemp("calc") / "calc-suite"))


@pytest.fixture(scope="module")
def backend():
    from sandbox import get_backend

    return get_backend("local")


def setup_for(suite, backend, root: Path, **extra) -> EvalSetup:
    return EvalSetup(backend=backend, suite=suite, access=lambda tags: ModelAccess(), costs=CostBook(),
                     limits=SolveLimits(solve_timeout_s=60, test_timeout_s=60), root=root, **extra)


def test_planted_canary_makes_the_evaluation_unscored_and_shows_in_hgm_show(suite, backend, tmp_path: Path) -> None:
    task = suite.tasks()[0]
    clean = evaluate(setup_for(suite, backend, tmp_path), 0, stub_agent(tmp_path / "clean", "nothing"), task,
                     tmp_path / "out-clean", {"job": "a"})
    assert clean.status == "resolved"  # the same agent without the leak solves the task
    record = evaluate(setup_for(suite, backend, tmp_path), 0, stub_agent(tmp_path / "leaky", canary_for(task)), task,
                      tmp_path / "out-leak", {"job": "b"})
    assert record.status == "contaminated" and record.utility is None and "trajectory" in record.detail
    assert not (tmp_path / "out-leak" / "test.log").exists()  # never graded

    with Run.create(tmp_path / "run", {}, make_agent(tmp_path / "seed")) as run:
        run.record_eval(record)
        run.record_eval(EvalRecord(0, "calc-2", "unresolved"))
        summary = run_summary(run)
    assert summary["guards"]["contaminated"] == 1 and summary["evaluations"] == 1
    result = CliRunner().invoke(build_app(), ["show", str(tmp_path / "run"), "--json"])
    [row] = json.loads(result.stdout)["nodes"]
    assert row["evals"] == 1 and row["contaminated_evals"] == 1 and "contaminated" in row["flags"]
    table = CliRunner().invoke(build_app(), ["show", str(tmp_path / "run")]).stdout
    assert "contaminated 1" in table


def test_secrets_are_redacted_from_agent_outputs_before_they_are_kept(suite, backend, tmp_path: Path) -> None:
    task = suite.tasks()[0]
    setup = setup_for(suite, backend, tmp_path, redact=Redactor([KEY]))
    record = evaluate(setup, 0, stub_agent(tmp_path / "agent", KEY), task, tmp_path / "out", {"job": "a"})
    assert record.status == "resolved"
    for path in (tmp_path / "out").iterdir():
        assert KEY not in path.read_text(errors="replace") and KEY[-8:] not in path.read_text(errors="replace")
    assert "[redacted]" in (tmp_path / "out" / "trajectory.jsonl").read_text()


def test_redactor_hides_key_values_tails_and_provider_key_shapes() -> None:
    redact = Redactor.from_environ({"OPENAI_API_KEY": KEY, "HOME": "/home/someone-long", "MY_TOKEN": "short"})
    text = f"key {KEY}, tail ...{KEY[-8:]}, aws AKIAABCDEFGHIJKLMNOP, gh ghp_{'a' * 36}, home /home/someone-long"
    out = redact(text)
    assert KEY not in out and KEY[-8:] not in out and "AKIA" not in out and "ghp_" not in out
    assert "/home/someone-long" in out and out.count("[redacted]") == 4
    assert redact.data(KEY.encode() + b"\xff") == b"[redacted]\xff"  # undecodable bytes kept
    assert Redactor(patterns=False)("sk-anything-0123456789abcdefghij") == "sk-anything-0123456789abcdefghij"


def test_agent_run_redaction_covers_every_output() -> None:
    run = AgentRun("cmd", 0, False, 1.0, stdout=f"out {KEY}", stderr=KEY,
                   outputs={"patch.diff": f"+x = '{KEY}'\n".encode(), "trajectory.jsonl": KEY.encode()})
    clean = run.redacted(Redactor([KEY]))
    assert KEY not in clean.stdout + clean.stderr and all(KEY.encode() not in v for v in clean.outputs.values())
    assert run.redacted(None) is run


def _run_with_children(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    checks = ({"name": "capabilities", "verdict": "fail", "reason": "reads OPENAI_API_KEY", "details": []},)
    with Run.create(path, {"policy": {"final_rule": "raw-mean"}}, make_agent(tmp_path / "seed")) as run:
        a = run.add_node(0, make_agent(tmp_path / "a", "a\n"), "self_improve", expansion=ExpansionRecord(0, "ok"),
                         admission=AdmissionRecord(0, "accepted", diff_sha256="ab" * 32, producer={"model": "m"},
                                                   checks=({"name": "size", "verdict": "pass", "reason": "small"},)))
        b = run.add_node(a, make_agent(tmp_path / "b", "b\n"), "self_improve")
        run.record_expansion(ExpansionRecord(a, "failed", reason="rejected by the gate"),
                             admission=AdmissionRecord(a, "rejected", reason="capabilities: reads OPENAI_API_KEY",
                                                       checks=checks))
        for task in ("t1", "t2", "t3"):
            run.record_eval(EvalRecord(b, task, "resolved", flags=("machinery:strip",)))
            run.record_eval(EvalRecord(a, task, "unresolved"))
        run.record_eval(EvalRecord(0, "t1", "unresolved"))
    return path


def test_show_counts_machinery_and_flags_a_node_that_keeps_touching_it(tmp_path: Path) -> None:
    path = _run_with_children(tmp_path)
    rows = {r["id"]: r for r in json.loads(CliRunner().invoke(build_app(), ["show", str(path), "--json"]).stdout)["nodes"]}
    assert rows[2]["machinery_evals"] == 3 and rows[2]["flags"] == ["test-machinery"]
    assert rows[1]["machinery_evals"] == 0 and rows[1]["flags"] == []
    assert "machinery 3 !" in CliRunner().invoke(build_app(), ["show", str(path)]).stdout


def test_show_node_prints_its_ledger(tmp_path: Path) -> None:
    path = _run_with_children(tmp_path)
    data = json.loads(CliRunner().invoke(build_app(), ["show", str(path), "--node", "1", "--json"]).stdout)
    decisions = [(e["decision"], e["node_id"], e["parent_id"]) for e in data["ledger"]]
    assert decisions == [("accepted", 1, 0), ("rejected", None, 1)]
    assert [e["task_id"] for e in data["evaluations"]] == ["t1", "t2", "t3"]
    text = CliRunner().invoke(build_app(), ["show", str(path), "--node", "1"]).stdout
    assert "accepted as a child of node 0" in text and "a child of this node was rejected" in text
    assert "reads OPENAI_API_KEY" in text and "size" in text


def test_retire_takes_a_clade_out_of_the_final_choice_and_is_recorded(tmp_path: Path) -> None:
    path = _run_with_children(tmp_path)
    with Run.open(path) as run:
        assert best_in_tree(run.tree(), "raw-mean")["node"] == 2  # 3/3 resolved
    result = CliRunner().invoke(build_app(), ["retire", str(path), "1", "--why", "patches fake the test results"])
    assert result.exit_code == 0 and "1, 2" in result.stdout
    with Run.open(path) as run:
        tree = run.tree()
        assert best_in_tree(tree, "raw-mean")["node"] == 0 and tree.retired_clades() == {1, 2}
        rows = {r["id"]: r for r in node_rows(tree, run.config)}
        assert rows[1]["flags"] == ["retired"] and "retired-clade" in rows[2]["flags"]
        assert rows[2]["score"] is None and len(tree) == 3  # nothing deleted
        [retirement] = [e for e in run.ledger() if e["kind"] == "retirement"]
        assert retirement["reason"] == "patches fake the test results" and retirement["producer"]["command"] == "hgm retire"
        assert run_summary(run)["guards"]["retired"] == 1
    again = CliRunner().invoke(build_app(), ["retire", str(path), "1", "--why", "again"])
    assert again.exit_code == 2 and "already retired" in again.stderr
    root = CliRunner().invoke(build_app(), ["retire", str(path), "0", "--why", "x"])
    assert root.exit_code == 2 and "cannot be retired" in root.stderr


def test_a_resumed_search_never_expands_or_evaluates_a_retired_clade(tmp_path: Path) -> None:
    from hgm.loop.session import build_state

    path = _run_with_children(tmp_path)
    with Run.open(path, writable=True) as run:
        run.retire(1, "bad lineage")
        state = build_state(run.tree(), ["t1", "t2", "t3", "t4"], run.expansions(), run.evaluations())
    assert state.node_ids == [0]
    # what the retired clade cost still counts: its evaluations and its nodes as attempts
    assert state.evals_completed == 7 and state.expansions_failed == 3


def test_vet_refuses_folders_without_an_agent(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(build_app(), ["vet", "--parent", str(tmp_path / "empty"), "--child", str(tmp_path)])
    assert result.exit_code == 2 and "has no agent/ package" in result.stderr


def test_a_new_run_freezes_the_gate_manifest_and_the_grading_mode(tmp_path: Path) -> None:
    from hgm.config import ConfigError, build_config
    from hgm.loop.session import create_run, gate_settings

    config = build_config(overrides={"grading": {"test_machinery": "reject"}, "gate": {"max_size_ratio": 2.0}})
    with create_run(config, tmp_path / "run") as run:
        frozen = run.config
        settings = gate_settings(run)
    assert frozen["grading"]["test_machinery"] == "reject"
    assert frozen["gate"]["protected"][0] == "agent/tests/test_contract*.py"
    assert "agent/tests/fake_server.py" in frozen["gate"]["protected"]
    assert settings.protected == tuple(frozen["gate"]["protected"]) and settings.max_size_ratio == 2.0
    with pytest.raises(ConfigError, match="test_machinery"):
        build_config(overrides={"grading": {"test_machinery": "sometimes"}})


def test_a_run_made_before_the_gate_gets_its_seeds_manifest(tmp_path: Path) -> None:
    from hgm.loop.session import gate_settings, seed_agent_tree

    seed = seed_agent_tree(tmp_path / "seed")
    with Run.create(tmp_path / "run", {"suite": "mini"}, seed) as run:  # an old config: no [gate]
        settings = gate_settings(run)
    assert settings.protected[0] == "agent/tests/test_contract*.py" and settings.max_size_ratio == 1.5
