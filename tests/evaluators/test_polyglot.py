"""A small Polyglot checkout: loading, what the agent sees, grading, skipping with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluators.grading import grade
from evaluators.outcomes import Outcome
from evaluators.polyglot import PolyglotSuite
from evaluators.suite import load_suite
from evaluators.validate import validate_suite
from fakesandbox import FakeBackend
from sandbox.api import SandboxSpec

CHECKOUT = Path(__file__).parent / "fixtures" / "polyglot"


@pytest.fixture()
def suite() -> PolyglotSuite:
    loaded = load_suite(CHECKOUT, available_tools={"python3"})
    assert isinstance(loaded, PolyglotSuite)
    return loaded


def test_loads_exercises_as_tasks(suite: PolyglotSuite) -> None:
    tasks = {t.instance_id: t for t in suite.tasks()}
    assert set(tasks) == {"polyglot__go-hello-world", "polyglot__python-leap", "polyglot__python-two-fer"}
    two_fer = tasks["polyglot__python-two-fer"]
    assert "One for NAME" in two_fer.problem_statement
    assert "optional argument" in two_fer.problem_statement  # instructions.append.md
    assert two_fer.FAIL_TO_PASS == [
        "two_fer_test.py::TwoFerTest::test_no_name_given",
        "two_fer_test.py::TwoFerTest::test_a_name_given",
        "two_fer_test.py::TwoFerTest::test_another_name_given",
    ]
    assert "+    return f\"One for {name}, one for me.\"" in two_fer.patch


def test_agent_sees_stubs_but_no_tests_or_solution(suite: PolyglotSuite) -> None:
    task = suite.select(["polyglot__python-two-fer"])[0]
    with FakeBackend().open(SandboxSpec()) as session:
        repo = Path(session.resolve(suite.prepare(session, task, "/work/repo")))
        names = sorted(p.name for p in repo.iterdir() if p.name != ".git")
    assert names == ["two_fer.py"]


def test_non_python_exercise_is_skipped_with_a_reason(suite: PolyglotSuite) -> None:
    go = suite.select(["polyglot__go-hello-world"])[0]
    assert suite.skip_reason(go) == "go (go toolchain) is not in image hgm-base:latest"
    checks = validate_suite(suite, FakeBackend(), ["polyglot__go-hello-world"])
    assert checks[0].ok and checks[0].skipped


def test_skip_reason_says_where_the_backend_runs(suite: PolyglotSuite) -> None:
    go = suite.select(["polyglot__go-hello-world"])[0]
    suite.use_backend(FakeBackend())  # a host-side backend: its `where` says so
    assert suite.skip_reason(go) == "go (go toolchain) is not on this host"


def test_gold_resolves_stub_does_not(suite: PolyglotSuite) -> None:
    checks = validate_suite(suite, FakeBackend(), ["polyglot__python-two-fer", "polyglot__python-leap"])
    for check in checks:
        assert check.ok, check.problem
        assert check.gold and check.gold.outcome is Outcome.RESOLVED


def test_partial_solution_is_unresolved(suite: PolyglotSuite) -> None:
    task = suite.select(["polyglot__python-two-fer"])[0]
    partial = task.patch.replace('def two_fer(name="you"):', "def two_fer(name):")
    assert grade(partial, task, suite, FakeBackend()).outcome is Outcome.UNRESOLVED


@pytest.mark.docker
def test_python_exercise_on_docker(docker_backend) -> None:
    suite = PolyglotSuite(CHECKOUT)  # probes the image for toolchains
    go = suite.select(["polyglot__go-hello-world"])[0]
    assert "not in image" in (suite.skip_reason(go) or "")
    checks = validate_suite(suite, docker_backend)
    assert all(c.ok for c in checks), [c.problem for c in checks]
    assert sum(c.skipped is None for c in checks) == 2
