"""Level-2 operators: the operator mix, recombine on real git branches, refine, and their fallbacks.

The recombine test is the must-show: two versions of the real seed agent, stored in a run's
archive as branches that both changed the same line of `agent/prompts.py`, are merged from
their common ancestor; the scripted improve agent resolves the conflict; the child passes
its own tests in a fresh sandbox (the one acceptance) and is stored with both parents.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from archive import EvalRecord, Run
from evaluators.task import Task
from hgm.config import EvolveConfig
from hgm.evolve.expand import ExpandSetup, expand
from hgm.evolve.improve import ImproveLimits
from hgm.evolve.lessons import EvalView
from hgm.evolve.merge import merge_sources, unresolved
from hgm.evolve.operators import (
    Version,
    choose_operator,
    common_ancestor,
    pick_partner,
    recombine_problem,
    refine_problem,
)
from hgm.gateway import GatewayConfig, start_gateway
from hgm.gateway.costs import CostBook
from hgm.loop.checkouts import CheckoutCache
from hgm.loop.job_handler import ArchivePeers

SEED = Path(__file__).resolve().parents[3] / "agent"
RESOLVE = ("python3 -c \"import pathlib, re; p = pathlib.Path('agent/prompts.py'); "
           "p.write_text(re.sub(r'(?m)^(<<<<<<<|[|]{7}|=======|>>>>>>>).*\\n', '', p.read_text()))\" && git diff --stat")


def bash(command: str) -> str:
    return f"THOUGHT: resolve the merge.\n```bash\n{command}\n```"


def versions() -> dict[int, Version]:
    return {
        0: Version(0, None, 3, 7),
        1: Version(1, 0, 2, 2, frozenset({"t1"}), frozenset({"t2"})),
        2: Version(2, 0, 1, 0, frozenset({"t2"}), frozenset()),
        3: Version(3, 1, 0, 1, frozenset(), frozenset({"t1"})),
        4: Version(4, 2, 0, 0),  # never measured: no partner
    }


def test_operator_mix_partner_and_ancestor() -> None:
    rng = random.Random(0)
    state = rng.getstate()
    assert choose_operator({"revise": 1.0, "refine": 0.0}, rng) == "revise" and rng.getstate() == state
    drawn = {choose_operator({"revise": 1, "recombine": 1, "refine": 1}, rng) for _ in range(60)}
    assert drawn == {"revise", "recombine", "refine"}
    vs = versions()
    assert pick_partner(vs, 1) == 2  # not its ancestor 0 or descendant 3; 4 is unmeasured
    assert pick_partner(vs, 3) == 2 and pick_partner(vs, 0) is None
    assert common_ancestor(vs, 3, 2) == 0 and common_ancestor(vs, 3, 1) == 1


def test_recombine_and_refine_problems_carry_their_material(tmp_path: Path) -> None:
    vs = versions()
    text = recombine_problem(vs[1], vs[2], ("agent/prompts.py",), "+A", "+B", {"t1": "ISSUE ONE", "t2": "ISSUE TWO"}, 4000)
    assert "agent/prompts.py" in text and "ISSUE ONE" in text and "ISSUE TWO" in text and "+A" in text and "+B" in text
    art = tmp_path / "e1"
    art.mkdir()
    (art / "trajectory.jsonl").write_text(json.dumps({"step": 1, "action": "SOLVED-STEP"}) + "\n")
    (art / "result.json").write_text(json.dumps({"steps": 7, "tokens": 9000, "exit_reason": "submitted"}))
    evals = [EvalView("t1", "resolved", trajectory_path=str(art / "trajectory.jsonl")), EvalView("t2", "unresolved")]
    problem = refine_problem(evals, 3000)
    assert "solved 1 of 2" in problem and "t1: resolved, 7 steps, 9000 tokens" in problem and "SOLVED-STEP" in problem
    assert refine_problem([EvalView("t2", "unresolved")], 3000) is None


def _agent_with(root: Path, line: str) -> Path:
    shutil.copytree(SEED, root / "agent", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if line:
        with (root / "agent" / "prompts.py").open("a") as fh:
            fh.write(line + "\n")
    return root


def test_merge_leaves_diff3_markers_on_a_conflict(tmp_path: Path) -> None:
    base, ours, theirs = (_agent_with(tmp_path / n, line) for n, line in (("b", ""), ("o", "# A"), ("t", "# B")))
    merge = merge_sources(base, ours, theirs, tmp_path / "m")
    assert merge.conflicts == ("agent/prompts.py",) and "+# A" in merge.ours_diff and "+# B" in merge.theirs_diff
    text = (tmp_path / "m" / "agent" / "prompts.py").read_text()
    assert "<<<<<<< HEAD" in text and "|||||||" in text and ">>>>>>> theirs" in text
    assert unresolved(tmp_path / "m", merge.conflicts) == ["agent/prompts.py"]
    assert not (tmp_path / "m" / ".git").exists()


@pytest.fixture(scope="module")
def backend():
    from sandbox import get_backend

    return get_backend("local")


def _setup(backend, gateway, operators: dict[str, float], tasks: dict[str, Task]) -> ExpandSetup:
    return ExpandSetup(backend=backend, access=gateway.access, gateway_url=gateway.url, alias=gateway.config.alias,
                       model="scripted", tasks=tasks, evolve=EvolveConfig(operators=operators),
                       limits=ImproveLimits(improve_timeout_s=120, test_timeout_s=240, python=backend.python))


def test_recombine_on_real_branches_resolves_the_conflict_and_the_child_passes_its_tests(backend, tmp_path: Path) -> None:
    run = Run.create(tmp_path / "run", {"model": "scripted"}, _agent_with(tmp_path / "seed", ""))
    one = run.add_node(0, _agent_with(tmp_path / "one", "# NOTE-A: read the failing test first."), "revise")
    two = run.add_node(0, _agent_with(tmp_path / "two", "# NOTE-B: check the diff before submitting."), "revise")
    run.record_evals([EvalRecord(one, "t1", "resolved"), EvalRecord(one, "t2", "unresolved"),
                      EvalRecord(two, "t2", "resolved"), EvalRecord(two, "t1", "unresolved")])
    tasks = {t: Task(instance_id=t, repo="r", base_commit="c", problem_statement=f"STATEMENT OF {t}", FAIL_TO_PASS=[])
             for t in ("t1", "t2")}
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"improve": [bash(RESOLVE), bash("submit")]}))
    calls: list = []
    costs = CostBook(calls.append)
    checkouts = CheckoutCache(run, tmp_path / "checkouts")
    with start_gateway(GatewayConfig(model=f"scripted:{script}"), costs) as gateway:
        outcome = expand(_setup(backend, gateway, {"recombine": 1.0}, tasks), one, checkouts.get(one), [],
                         random.Random(0), tmp_path / "exp", {"job": "j", "node": one}, lambda: costs.job("j"),
                         peers=ArchivePeers(run, checkouts))
    record = outcome.record
    assert record.status == "ok", record.reason
    # no diagnosis call: the improve agent's calls only, each under the expansion's attempt cap
    assert calls and {(c.tags["purpose"], c.tags["attempt"]) for c in calls} == {("improve", "j")}
    assert (outcome.operator, record.operator, record.second_parent_id) == ("recombine", "recombine", two)
    problem = (tmp_path / "exp" / "problem.md").read_text()
    assert "agent/prompts.py" in problem and "STATEMENT OF t1" in problem and "STATEMENT OF t2" in problem
    merged = (tmp_path / "exp" / "merged" / "agent" / "prompts.py").read_text()
    assert "<<<<<<<" in merged  # the agent started from a real conflict
    child = (outcome.child_dir / "agent" / "prompts.py").read_text()
    assert "NOTE-A" in child and "NOTE-B" in child and "<<<<<<<" not in child and ">>>>>>>" not in child
    assert "OK" in (tmp_path / "exp" / "agent_tests.log").read_text()  # its own tests passed in a fresh sandbox
    child_id = run.add_node(one, outcome.child_dir, outcome.operator, record.lesson, record.diagnosis, expansion=record)
    commit = run.agents.repo.commit(run.commit_of(child_id))
    assert [p.hexsha for p in commit.parents] == [run.commit_of(one), run.commit_of(two)]
    assert run.tree()[child_id].second_parent_id == two and json.loads(record.diagnosis)["conflicts"] == ["agent/prompts.py"]
    run.close()


STUB_MAIN = '''
import argparse, os, subprocess
p = argparse.ArgumentParser()
p.add_argument("mode"); p.add_argument("--problem"); p.add_argument("--repo"); p.add_argument("--out")
p.add_argument("--max-steps")
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.repo, "agent", "prompts.py"), "a") as f:
    f.write("# shorter prompts\\n")
subprocess.run(["git", "add", "-A"], cwd=a.repo, check=True)
diff = subprocess.run(["git", "diff", "--cached"], cwd=a.repo, capture_output=True, check=True).stdout
open(os.path.join(a.out, "patch.diff"), "wb").write(diff)
open(os.path.join(a.out, "trajectory.jsonl"), "w").write("")
open(os.path.join(a.out, "result.json"), "w").write('{"exit_reason": "submitted"}')
'''


def _stub(root: Path) -> Path:
    (root / "agent" / "tests").mkdir(parents=True)
    for name, text in (("__init__.py", ""), ("__main__.py", STUB_MAIN), ("prompts.py", "P = 1\n"),
                       ("tests/__init__.py", ""),
                       ("tests/test_ok.py", "import unittest\n\n\nclass T(unittest.TestCase):\n    def test(self):\n        pass\n")):
        (root / "agent" / name).write_text(text)
    return root


def test_refine_and_its_fallback_to_revise(backend, tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    diagnosis = {"improvement_proposal": "p", "implementation_plan": "i", "problem_description": "a long enough issue"}
    script.write_text(json.dumps({"diagnose": [json.dumps(diagnosis)]}))
    parent = _stub(tmp_path / "parent")
    art = tmp_path / "e1"
    art.mkdir()
    (art / "result.json").write_text(json.dumps({"steps": 12, "tokens": 5000, "exit_reason": "submitted"}))
    solved = [EvalView("t1", "resolved", trajectory_path=str(art / "trajectory.jsonl"))]
    costs = CostBook()
    with start_gateway(GatewayConfig(model=f"scripted:{script}"), costs) as gateway:
        setup = _setup(backend, gateway, {"refine": 1.0}, {})
        refined = expand(setup, 0, parent, solved, random.Random(0), tmp_path / "r", {"job": "r"}, lambda: (0.0, 0))
        fallback = expand(setup, 0, parent, [EvalView("t1", "unresolved")], random.Random(0), tmp_path / "f",
                          {"job": "f"}, lambda: (0.0, 0))
        lonely = expand(_setup(backend, gateway, {"recombine": 1.0}, {}), 0, parent, [], random.Random(0),
                        tmp_path / "l", {"job": "l"}, lambda: (0.0, 0))
    assert refined.record.status == "ok" and refined.operator == "refine" and refined.record.lesson == "refine"
    assert "12 steps, 5000 tokens" in (tmp_path / "r" / "problem.md").read_text()
    assert fallback.record.status == "ok" and fallback.operator == "revise"
    assert "revised instead" in json.loads(fallback.record.diagnosis)["note"]
    assert lonely.operator == "revise" and "no view of the other versions" in json.loads(lonely.record.diagnosis)["note"]
