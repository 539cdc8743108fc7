"""Attempts through the one evaluation path, on the local sandbox with the real seed agent.

The model is scripted by purpose: the agent (purpose `solve`) writes a reproduction
script, fixes `calc.add`, runs the script and submits; summaries and operators answer with
valid JSON. A recording backend keeps every byte put into a sandbox and every command run
there, which proves that the hidden test patch reaches the grading sandbox and no other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evaluators.suite import load_suite
from hgm.evaluation.attempts import AttemptsPolicy
from hgm.evaluation.checks import SandboxChecker, CheckLimits, related_tests, visible_task
from hgm.evaluation.evaluate import EvalSetup, SolveLimits, evaluate
from hgm.gateway import GatewayConfig, start_gateway
from hgm.gateway.chat import gateway_chat
from hgm.gateway.costs import CostBook

AGENT = Path(__file__).resolve().parents[3]  # the repository root holds the seed agent/
HIDDEN = "assert add(2, 3) == 5"  # a line of calc-1's hidden test patch, nowhere else
REPRO = "printf 'from calc import add\\nassert add(2, 3) == 5, add(2, 3)\\n' > repro.py && python3 repro.py"


def bash(thought: str, command: str) -> str:
    return f"THOUGHT: {thought}\n```bash\n{command}\n```"


SCRIPT = {
    "solve": [bash("reproduce", REPRO.replace("assert add(2, 3) == 5", "assert add(2, 3) == 2 + 3")),
              bash("fix the sign", "sed -i 's/return a - b/return a + b/' calc.py"),
              bash("check", "python3 repro.py"), bash("done", "submit")],
    "summarize": [json.dumps({"approach": "reproduced with repro.py, fixed the sign in calc.add",
                              "files": ["calc.py", "repro.py"], "key_changes": "a - b -> a + b",
                              "strategy": "script first", "assumptions": "add adds", "checks": "repro.py passes"})],
    "refine": [json.dumps({"guidance": "REFINE: keep the one-line fix in calc.add and re-run repro.py."})],
    "recombine": [json.dumps({"guidance": "RECOMBINE: both attempts fixed calc.add; keep the smaller diff."})],
    "revise": [json.dumps({"guidance": "REVISE: start from the tests of calc instead of a script."})],
}


class Recorder:
    """A backend wrapper that records, per sandbox purpose, everything put and run."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.python = inner, inner.name, inner.python
        self.seen: list[tuple[str, str]] = []  # (purpose, text)

    def where(self, image: str) -> str:
        return self.inner.where(image)

    def open(self, spec: Any) -> Any:
        purpose = spec.labels.get("hgm.purpose") or spec.labels.get("hgm.role") or "?"
        session, seen = self.inner.open(spec), self.seen

        class Session:
            def __getattr__(self, name: str) -> Any:
                return getattr(session, name)

            def __enter__(self) -> "Session":
                session.__enter__()
                return self

            def __exit__(self, *exc: object) -> None:
                session.__exit__(*exc)

            def put(self, path: str, data: Any) -> None:
                files = [data] if not isinstance(data, Path) else ([data] if data.is_file() else data.rglob("*"))
                for item in files:
                    text = item.decode(errors="replace") if isinstance(item, bytes) else (
                        item.read_text(errors="replace") if item.is_file() and ".git" not in item.parts else "")
                    seen.append((purpose, text))
                session.put(path, data)

            def exec(self, cmd: Any, *args: Any, **kwargs: Any) -> Any:
                seen.append((purpose, str(cmd)))
                return session.exec(cmd, *args, **kwargs)

        return Session()

    def purposes_with(self, text: str) -> set[str]:
        return {purpose for purpose, seen in self.seen if text in seen}


@pytest.fixture(scope="module")
def backend():
    from sandbox import get_backend

    return get_backend("local")


@pytest.fixture(scope="module")
def suite(calc_suite_dir: Path, backend):
    suite = load_suite(calc_suite_dir)
    suite.use_backend(backend)
    return suite


def test_two_generations_select_a_checked_patch_and_hidden_tests_reach_only_the_grader(
    suite, backend, tmp_path: Path
) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    recorder, calls = Recorder(backend), []
    costs = CostBook(calls.append)
    task = next(t for t in suite.tasks() if t.instance_id == "calc-1")
    assert HIDDEN in task.test_patch and HIDDEN not in task.problem_statement
    agent_dir = tmp_path / "agent-src"
    import shutil

    shutil.copytree(AGENT / "agent", agent_dir / "agent", ignore=shutil.ignore_patterns("__pycache__"))
    with start_gateway(GatewayConfig(model=f"scripted:{script}"), costs) as gateway:
        setup = EvalSetup(backend=recorder, suite=suite, access=gateway.access, costs=costs,
                          limits=SolveLimits(max_steps=6, solve_timeout_s=120, test_timeout_s=120), root=tmp_path,
                          attempts=AttemptsPolicy(attempts=2, generations=2),
                          chat=gateway_chat(gateway.url, gateway.config.alias))
        record = evaluate(setup, 0, agent_dir, task, tmp_path / "out", {"job": "j1", "task": "calc-1", "purpose": "solve"})
    assert record.status == "resolved", record.detail
    ops = [(a.index, a.operator, a.parents) for a in record.attempts]
    assert ops == [(1, "sample", ()), (2, "sample", ()), (3, "refine", (1, 2)), (4, "recombine", (1, 2))]
    assert sum(a.selected for a in record.attempts) == 1
    for attempt in record.attempts:  # every operator's attempt yields a valid, checked patch
        feats = attempt.features
        assert feats["valid"] and feats["applies"] and feats["syntax_ok"], attempt
        assert feats["regressions"] == 0 and feats["tests_run"] == 1 and feats["repro"] == "fail_pass", feats
        assert feats["repro_scripts"] == ["repro.py"] and attempt.detail == "", attempt.detail
    # the operators' guidance is in the first prompt of the new attempt
    first = json.loads((tmp_path / "out" / "attempts" / "a04" / "trajectory.jsonl").read_text().splitlines()[0])
    assert "RECOMBINE: both attempts fixed calc.add" in json.dumps(first["messages"])
    # hgm's own calls went through the gateway, priced into the job, tagged by purpose
    purposes = [c.tags.get("purpose") for c in calls]
    assert {"summarize", "refine", "recombine", "solve"} <= set(purposes)
    assert all(c.tags.get("job") == "j1" and c.tags.get("evaluation") == "j1" for c in calls)
    assert record.tokens == sum(c.prompt_tokens + c.completion_tokens for c in calls) > 0
    # the hidden test patch reached the grading sandbox, and no agent or selection sandbox
    assert recorder.purposes_with(HIDDEN) == {"grading"}
    assert {"solve", "select"} <= {p for p, _ in recorder.seen}


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def check_backend(request, backend, require_or_skip):
    if request.param == "local":
        return backend
    from sandbox import docker_unavailable_reason, get_backend

    if reason := docker_unavailable_reason():
        require_or_skip("HGM_REQUIRE_DOCKER", reason)
    return get_backend("docker")


def test_checks_tell_broken_candidates_apart(calc_suite_dir: Path, check_backend) -> None:
    backend = check_backend
    suite = load_suite(calc_suite_dir)
    suite.use_backend(backend)
    task = next(t for t in suite.tasks() if t.instance_id == "calc-1")
    checker = SandboxChecker(backend, suite, task, suite.ensure_environment(task, backend), CheckLimits(test_timeout_s=60))
    fix = task.patch  # applies, compiles, keeps test_mean green
    syntax = fix.replace("+    return a + b", "+    return a +")
    regress = ("diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -8,2 +8,2 @@\n def mean(xs):\n"
               "-    return sum(xs) / len(xs)\n+    return 0\n")  # breaks test_mean
    stale = fix.replace("-    return a - b", "-    return a * b")
    ok, bad_syntax, regression, no_apply = (checker.check(p, None) for p in (fix, syntax, regress, stale))
    assert (ok.valid, ok.applies, ok.syntax_ok, ok.regressions, ok.tests_run) == (True, True, True, 0, 1), ok
    assert bad_syntax.syntax_ok is False and not bad_syntax.valid
    assert regression.regressions == 1 and regression.valid
    assert no_apply.applies is False and not no_apply.valid
    assert checker.check("", None).empty


def test_the_selection_task_has_nothing_hidden() -> None:
    from evaluators.task import Task

    task = Task(instance_id="t", repo="r", base_commit="c", problem_statement="p", patch="GOLD", test_patch="HIDDEN",
                FAIL_TO_PASS=["a"], PASS_TO_PASS=["b"], eval_script="EVAL")
    seen = visible_task(task).model_dump_json()
    assert not any(word in seen for word in ("GOLD", "HIDDEN", "EVAL", '"a"', '"b"'))
    assert related_tests(["calc.py", "tests/test_calc.py", "tests/test_other.py", "tests/conftest.py"], ["calc.py"]) == [
        "tests/test_calc.py"]
    assert related_tests(["x.py", "tests/test_a.py"], ["x.py"]) == ["tests/test_a.py"]  # none named: all (few)
