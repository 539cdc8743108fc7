"""Self-improvement on the local sandbox with a stub agent: every acceptance path.

The stub `agent` package obeys a keyword in the problem text (edit a prompt, break its
own tests, touch a contract test, do nothing, crash) and writes OUT/patch.diff like the
real agent, so `self_improve` is exercised end to end without a model.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hgm.evolve.improve import ImproveLimits, apply_diff, prepare_work_tree, self_improve
from hgm.gateway.access import ModelAccess

STUB_MAIN = textwrap.dedent('''
    import argparse, os, subprocess, sys
    p = argparse.ArgumentParser()
    p.add_argument("mode"); p.add_argument("--problem"); p.add_argument("--repo"); p.add_argument("--out")
    p.add_argument("--max-steps")
    a = p.parse_args()
    problem = open(a.problem).read()
    os.makedirs(a.out, exist_ok=True)
    repo = a.repo
    if "CRASH" in problem:
        sys.exit(3)
    if "EDIT_PROMPT" in problem:
        with open(os.path.join(repo, "agent", "prompts.py"), "a") as f:
            f.write("\\n# better prompt\\n")
    if "BREAK_TESTS" in problem:
        with open(os.path.join(repo, "agent", "tests", "test_basic.py"), "a") as f:
            f.write("\\n\\nclass Broken(unittest.TestCase):\\n    def test_no(self):\\n        self.fail('broken')\\n")
    if "TOUCH_CONTRACT" in problem:
        with open(os.path.join(repo, "agent", "tests", "test_contract_cli.py"), "a") as f:
            f.write("\\n# weakened\\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    diff = subprocess.run(["git", "diff", "--cached", "--binary"], cwd=repo, capture_output=True, check=True).stdout
    open(os.path.join(a.out, "patch.diff"), "wb").write(diff)
    open(os.path.join(a.out, "trajectory.jsonl"), "w").write('{"step": 1}\\n')
    open(os.path.join(a.out, "result.json"), "w").write('{"exit_reason": "submitted", "tokens": 42}')
''')


@pytest.fixture()
def parent(tmp_path: Path) -> Path:
    root = tmp_path / "parent"
    tests = root / "agent" / "tests"
    tests.mkdir(parents=True)
    (root / "agent" / "__init__.py").write_text("")
    (root / "agent" / "__main__.py").write_text(STUB_MAIN)
    (root / "agent" / "prompts.py").write_text("SYSTEM = 'hi'\n")
    (tests / "__init__.py").write_text("")
    (tests / "test_basic.py").write_text("import unittest\n\n\nclass T(unittest.TestCase):\n    def test_ok(self):\n        self.assertTrue(True)\n")
    (tests / "test_contract_cli.py").write_text(
        "import unittest\n\n\nclass C(unittest.TestCase):\n    def test_cli(self):\n        self.assertTrue(True)\n"
    )
    return root


@pytest.fixture(scope="module")
def backend():
    from sandbox import get_backend

    return get_backend("local")


LIMITS = ImproveLimits(improve_timeout_s=60, test_timeout_s=60)


def attempt(backend, parent: Path, tmp_path: Path, problem: str, name: str):
    return self_improve(backend, parent, problem, ModelAccess(), LIMITS, tmp_path / name)


def test_accepted_child_has_the_edit_and_nothing_else_changes(backend, parent: Path, tmp_path: Path) -> None:
    result = attempt(backend, parent, tmp_path, "EDIT_PROMPT please", "ok")
    assert result.accepted and result.reason == ""
    assert "# better prompt" in (result.child_dir / "agent" / "prompts.py").read_text()
    assert not (result.child_dir / ".git").exists()
    assert (parent / "agent" / "prompts.py").read_text() == "SYSTEM = 'hi'\n"  # parent untouched
    assert result.tokens == 42 and result.verdict.accepted
    assert result.verdict.check("own_tests").reason.startswith("2 tests ran and passed")
    assert "Ran 2 tests" in result.test_output
    assert (tmp_path / "ok" / "patch.diff").read_text().startswith("diff --git")


def test_empty_diff_is_rejected(backend, parent: Path, tmp_path: Path) -> None:
    result = attempt(backend, parent, tmp_path, "NOTHING", "empty")
    assert not result.accepted and "empty diff" in result.reason and "submitted" in result.reason


def test_failing_own_tests_are_rejected(backend, parent: Path, tmp_path: Path) -> None:
    result = attempt(backend, parent, tmp_path, "EDIT_PROMPT and BREAK_TESTS", "broken")
    assert not result.accepted and "own_tests: 1 of 3 tests fail" in result.reason and "broken" in result.test_output


def test_contract_test_changes_are_rejected_before_testing(backend, parent: Path, tmp_path: Path) -> None:
    result = attempt(backend, parent, tmp_path, "EDIT_PROMPT and TOUCH_CONTRACT", "contract")
    assert not result.accepted and result.test_output == ""
    assert "protected: agent/tests/test_contract_cli.py modified" in result.reason


def test_contract_tests_hidden_from_discovery_still_run(backend, parent: Path, tmp_path: Path) -> None:
    hook = "def load_tests(loader, tests, pattern):\n    import unittest\n    return unittest.TestSuite()\n"
    (parent / "agent" / "tests" / "__init__.py").write_text(hook)
    (parent / "agent" / "tests" / "test_contract_cli.py").write_text(
        "import unittest\n\n\nclass C(unittest.TestCase):\n    def test_cli(self):\n        self.fail('contract broken')\n"
    )
    result = attempt(backend, parent, tmp_path, "EDIT_PROMPT", "hidden")
    assert not result.accepted and "contract broken" in result.test_output
    assert result.verdict.check("own_tests").verdict == "fail"


def test_crashing_agent_is_a_failed_expansion(backend, parent: Path, tmp_path: Path) -> None:
    result = attempt(backend, parent, tmp_path, "CRASH", "crash")
    assert not result.accepted and "empty diff" in result.reason and "crashed" in result.reason


def test_apply_diff_reports_a_bad_patch(parent: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    prepare_work_tree(parent, tree)
    bad = "diff --git a/agent/nope.py b/agent/nope.py\n--- a/agent/nope.py\n+++ b/agent/nope.py\n@@ -1 +1 @@\n-x\n+y\n"
    assert "does not apply" in apply_diff(tree, bad)
