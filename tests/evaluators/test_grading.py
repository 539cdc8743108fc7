"""Grading against a thin local sandbox: outcomes, pristine environments, recorded logs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from evaluators.grading import grade, grade_log
from evaluators.outcomes import Outcome
from evaluators.repos import snapshot
from evaluators.suite import GradingEnv, load_suite
from evaluators.taskrepo import TaskRepoSuite
from fakesandbox import FakeBackend
from sandbox.api import SandboxError, SandboxSpec

HANG = '''diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -2,7 +2,9 @@


 def add(a, b):
-    return a - b
+    while True:
+        pass
+    return a + b
'''


@pytest.fixture()
def suite(calc_suite_path: Path) -> TaskRepoSuite:
    loaded = load_suite(calc_suite_path)
    assert isinstance(loaded, TaskRepoSuite)
    return loaded


def test_gold_resolves_and_untouched_repo_does_not(suite: TaskRepoSuite) -> None:
    for task in suite.tasks():
        gold = grade(task.patch, task, suite, FakeBackend())
        assert gold.outcome is Outcome.RESOLVED, gold.log
        assert gold.report["tests_status"]["FAIL_TO_PASS"]["success"] == task.FAIL_TO_PASS
        untouched = grade("", task, suite, FakeBackend(), run_empty=True)
        assert untouched.outcome is Outcome.UNRESOLVED, untouched.log


def test_empty_patch_is_its_own_outcome_without_a_sandbox(suite: TaskRepoSuite) -> None:
    backend = FakeBackend()
    result = grade("  \n", suite.tasks()[0], suite, backend)
    assert result.outcome is Outcome.EMPTY_PATCH
    assert result.outcome.is_measurement and result.outcome.utility == 0.0
    assert backend.opened == []


def test_patch_that_does_not_apply(suite: TaskRepoSuite) -> None:
    task = suite.tasks()[0]
    stale = task.patch.replace("-    return a - b", "-    return a * b")
    result = grade(stale, task, suite, FakeBackend())
    assert result.outcome is Outcome.PATCH_FAILED
    assert result.detail
    garbage = grade("this is not a diff\n", task, suite, FakeBackend())
    assert garbage.outcome is Outcome.PATCH_FAILED


def test_hanging_test_run_times_out(suite: TaskRepoSuite) -> None:
    task = suite.tasks()[0]
    result = grade(HANG, task, suite, FakeBackend(), timeout=4)
    assert result.outcome is Outcome.TIMEOUT
    assert result.outcome.is_measurement
    assert result.duration < 30


def _agent_patch(suite: TaskRepoSuite, task, vandalize: str) -> str:
    """Play a misbehaving agent in its own sandbox; return the diff of what it did."""
    backend = FakeBackend()
    with backend.open(SandboxSpec()) as session:
        repo = session.resolve(suite.prepare(session, task, "/work/repo"))
        subprocess.run(["sh", "-c", vandalize], cwd=repo, check=True)
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
        return subprocess.run(["git", "diff", "--cached"], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize(
    "vandalize",
    [
        "rm -rf tests",
        "printf 'def test_add():\\n    pass\\n\\ndef test_mean():\\n    pass\\n' > tests/test_calc.py",
        "rm -rf tests && rm -rf .git/objects/* && echo 'raise SystemExit(0)' > pytest.py",
    ],
    ids=["deletes-tests", "rewrites-tests", "breaks-git-and-shadows-pytest"],
)
def test_agent_that_vandalizes_tests_is_still_graded_unresolved(suite: TaskRepoSuite, vandalize: str) -> None:
    task = suite.tasks()[0]
    patch = _agent_patch(suite, task, vandalize)
    assert patch.strip()
    result = grade(patch, task, suite, FakeBackend())
    assert result.outcome is Outcome.UNRESOLVED, result.log


def test_vandalized_tests_plus_real_fix_still_resolves(suite: TaskRepoSuite) -> None:
    """Grading restores the tests: deleting them does not hide a correct fix either."""
    task = suite.tasks()[0]
    patch = _agent_patch(suite, task, "rm -rf tests && sed -i 's/return a - b/return a + b/' calc.py")
    assert grade(patch, task, suite, FakeBackend()).outcome is Outcome.RESOLVED


def test_future_commits_never_reach_a_sandbox(suite: TaskRepoSuite) -> None:
    task = suite.tasks()[0]
    snap = snapshot(suite.repo_source(task), task.base_commit)
    log = subprocess.run(["git", "log", "--all", "--format=%H %s"], cwd=snap, capture_output=True, text=True).stdout
    assert log.split()[0] == task.base_commit
    assert "FUTURE" not in log and len(log.strip().splitlines()) == 1


class _BrokenBackend:
    name = "broken"
    python = "python3"

    def where(self, image: str) -> str:
        return f"in image {image}"

    def __init__(self) -> None:
        self.calls = 0

    def open(self, spec: SandboxSpec):
        self.calls += 1
        raise SandboxError("engine went away")


def test_infrastructure_error_is_retried_then_reported_unscored(suite: TaskRepoSuite) -> None:
    backend = _BrokenBackend()
    result = grade(suite.tasks()[0].patch, suite.tasks()[0], suite, backend, retries=1)
    assert result.outcome is Outcome.ERROR_INFRA
    assert result.outcome.utility is None and not result.outcome.is_measurement
    assert backend.calls == 2
    assert "engine went away" in result.detail


RECORDED = """+ echo '>>>>> Start Test Output'
>>>>> Start Test Output
=========================== short test summary info ============================
PASSED tests/test_calc.py::test_mean
{add_status} tests/test_calc.py::test_add - assert -1 == 5
============================== 1 failed, 1 passed in 0.01s =====================
+ SWEBENCH_TEST_EXIT_CODE={code}
>>>>> End Test Output
>>>>> Test Exit Code: {code}
"""


def test_grade_recorded_logs_with_swebench(suite: TaskRepoSuite) -> None:
    task = suite.tasks()[0]
    env = GradingEnv(image="x", eval_script="")
    outcome, report, _ = grade_log(task, RECORDED.format(add_status="PASSED", code=0), task.patch, env)
    assert outcome is Outcome.RESOLVED and report["resolved"]
    outcome, report, _ = grade_log(task, RECORDED.format(add_status="FAILED", code=1), task.patch, env)
    assert outcome is Outcome.UNRESOLVED
    assert report["tests_status"]["FAIL_TO_PASS"]["failure"] == ["tests/test_calc.py::test_add"]
    # a log claiming success while the test command failed is not believed
    outcome, _, _ = grade_log(task, RECORDED.format(add_status="PASSED", code=1), task.patch, env)
    assert outcome is Outcome.UNRESOLVED
    # the test command itself missing is the environment's fault, not the agent's
    outcome, _, detail = grade_log(task, ">>>>> Start Test Output\nsh: python3: not found\n>>>>> End Test Output\n>>>>> Test Exit Code: 127\n", task.patch, env)
    assert outcome is Outcome.ERROR_INFRA and "127" in detail


def test_agent_sandbox_never_holds_the_hidden_tests(suite: TaskRepoSuite) -> None:
    task = suite.tasks()[0]
    with FakeBackend().open(SandboxSpec()) as session:
        suite.prepare(session, task, "/work/repo")
        found = subprocess.run(["grep", "-rl", "test_add", session.resolve("/")], capture_output=True, text=True).stdout
        git_objects = subprocess.run(["git", "-C", session.resolve("/work/repo"), "log", "--all", "-p"],
                                     capture_output=True, text=True).stdout
    assert found == "" and "test_add" not in git_objects
    assert "def test_add" in task.test_patch


def test_patch_reaching_into_git_dir_is_refused(suite: TaskRepoSuite) -> None:
    task = suite.tasks()[0]
    hook = ("diff --git a/.git/hooks/post-checkout b/.git/hooks/post-checkout\nnew file mode 100755\n"
            "--- /dev/null\n+++ b/.git/hooks/post-checkout\n@@ -0,0 +1,2 @@\n+#!/bin/sh\n+echo pwned\n")
    result = grade(task.patch + hook, task, suite, FakeBackend())
    assert result.outcome is Outcome.PATCH_FAILED and ".git/" in result.detail


HOOK = (
    "import pytest\n\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
    "    out = yield\n    out.get_result().outcome = 'passed'\n"
)
# each cheat turns failing tests into passes (or tries to) without touching the code under test
CHEATS = {
    "conftest": {"conftest.py": HOOK},
    "pytest-ini": {"cheat_plugin.py": HOOK, "pytest.ini": "[pytest]\naddopts = -p cheat_plugin\n"},
    "pyproject": {"cheat_plugin.py": HOOK, "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p cheat_plugin"\n'},
    "pth": {"cheat_plugin.py": HOOK, "zz_hgm.pth": "import cheat_plugin\n"},
}
FIX = "sed -i 's/return a - b/return a + b/' calc.py"


def _write_files(files: dict[str, str]) -> str:
    """A shell command writing `files` (any text) into the repository."""
    import shlex

    return " && ".join(f"printf %s {shlex.quote(text)} > {shlex.quote(name)}" for name, text in files.items())


@pytest.mark.parametrize("cheat", list(CHEATS))
def test_test_machinery_is_stripped_by_default_and_never_resolves(suite: TaskRepoSuite, cheat: str) -> None:
    task = suite.tasks()[0]
    patch = _agent_patch(suite, task, _write_files(CHEATS[cheat]))
    stripped = grade(patch, task, suite, FakeBackend())
    assert stripped.outcome is Outcome.UNRESOLVED and stripped.flags == ("machinery:strip",)
    assert "test machinery stripped before grading" in stripped.detail
    backend = FakeBackend()
    rejected = grade(patch, task, suite, backend, test_machinery="reject")
    assert rejected.outcome is Outcome.UNRESOLVED and rejected.flags == ("machinery:reject",)
    assert "rejected: the patch touches test machinery" in rejected.detail and backend.opened == []


def test_allowed_machinery_is_graded_as_written_and_flagged(suite: TaskRepoSuite) -> None:
    """What `allow` means: the conftest.py hack really does fool pytest (so it is not the default)."""
    task = suite.tasks()[0]
    for cheat in ("conftest", "pytest-ini"):
        patch = _agent_patch(suite, task, _write_files(CHEATS[cheat]))
        allowed = grade(patch, task, suite, FakeBackend(), test_machinery="allow")
        assert allowed.outcome is Outcome.RESOLVED and allowed.flags == ("machinery:allow",)
    with pytest.raises(ValueError, match="strip, reject, allow"):
        grade(task.patch, task, suite, FakeBackend(), test_machinery="maybe")


def test_real_fix_beside_machinery_still_resolves_once_stripped(suite: TaskRepoSuite) -> None:
    task = suite.tasks()[0]
    patch = _agent_patch(suite, task, _write_files(CHEATS["conftest"]) + " && " + FIX)
    result = grade(patch, task, suite, FakeBackend())
    assert result.outcome is Outcome.RESOLVED and result.flags == ("machinery:strip",)
    assert "conftest.py" in result.detail


def test_a_clean_fix_carries_no_flag(suite: TaskRepoSuite) -> None:
    task = suite.tasks()[0]
    result = grade(task.patch, task, suite, FakeBackend())
    assert result.outcome is Outcome.RESOLVED and result.flags == () and "machinery" not in result.detail


def test_patch_with_the_task_canary_is_contaminated_and_not_graded(suite: TaskRepoSuite) -> None:
    from evaluators.canary import canary_for

    task = suite.tasks()[0]
    backend = FakeBackend()
    leak = task.patch + f"diff --git a/notes.txt b/notes.txt\nnew file mode 100644\n--- /dev/null\n+++ b/notes.txt\n@@ -0,0 +1 @@\n+{canary_for(task)}\n"
    result = grade(leak, task, suite, backend)
    assert result.outcome is Outcome.CONTAMINATED and result.outcome.utility is None and backend.opened == []
    other = suite.tasks()[1] if len(suite.tasks()) > 1 else None
    if other is not None:
        assert canary_for(other) != canary_for(task)


@pytest.mark.docker
def test_conftest_hack_no_longer_resolves_a_mini_task_on_docker(docker_backend) -> None:
    """The reported hole: a seven-line conftest.py scored mini tasks resolved. Stripped, it fails."""
    mini = load_suite("mini")
    task = mini.tasks()[0]
    hook = "".join(f"+{line}\n" for line in HOOK.splitlines())
    cheat = (f"diff --git a/conftest.py b/conftest.py\nnew file mode 100644\n--- /dev/null\n+++ b/conftest.py\n"
             f"@@ -0,0 +1,{len(HOOK.splitlines())} @@\n{hook}")
    allowed = grade(cheat, task, mini, docker_backend, test_machinery="allow")
    assert allowed.outcome is Outcome.RESOLVED  # the hole is real: pytest is fooled
    stripped = grade(cheat, task, mini, docker_backend)
    assert stripped.outcome is Outcome.UNRESOLVED and stripped.flags == ("machinery:strip",)


def test_eval_script_runs_the_backends_python(suite: TaskRepoSuite, tmp_path: Path) -> None:
    """HGM_PYTHON comes from `backend.python`, not from the backend's name."""
    import sys

    marker = tmp_path / "used"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f"#!/bin/sh\necho used >> {marker}\nexec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    backend = FakeBackend()
    backend.python = str(wrapper)
    task = suite.tasks()[0]
    assert grade(task.patch, task, suite, backend).outcome is Outcome.RESOLVED
    assert marker.read_text().startswith("used")
