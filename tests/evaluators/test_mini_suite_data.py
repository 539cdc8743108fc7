"""Independent check of the bundled mini suite's DATA (evaluators/suites/mini).

Uses only git, bash and swebench (not hgm's evaluators code): for every task, clone the
task's repository bundle at base_commit and run the task's own eval.sh on the host with
HGM_TESTBED/HGM_PYTHON, then grade the log with swebench's get_eval_report.

- gold patch applied, eval.sh as written            => resolved, test exit code 0
- nothing applied, eval.sh as swebench's make_test_spec rewrites it => unresolved
- the agent adds the hidden tests itself and deletes the repo's tests => unresolved,
  and the test patch still applies (eval.sh restores the tests first)

The eval runs happen once per session, in parallel threads; the parametrized tests
then read their results.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[2] / "evaluators" / "suites" / "mini"
TASK_IDS = sorted(p.name for p in (SUITE / "tasks").iterdir() if (p / "task.yaml").is_file())
DIFFICULTIES = {"one-line", "multi-line", "two-files", "feature"}


@dataclass
class Run:
    log: str
    report: dict


def load(instance_id: str) -> dict:
    from swebench.task.repo import load_task

    return load_task(SUITE / "tasks" / instance_id)


def changed_files(patch: str) -> set[str]:
    return set(re.findall(r"^diff --git a/(\S+) b/", patch, re.M))


def git(cwd: Path, *args: str, stdin: str | None = None) -> None:
    subprocess.run(
        ["git", *args], cwd=cwd, input=stdin, text=True, check=True, capture_output=True
    )


def run_eval(instance: dict, workdir: Path, prepare, script: str, patch: str) -> Run:
    """Clone the bundle at base_commit, let ``prepare`` act as the agent, run ``script``."""
    from swebench.harness.grading import get_eval_report
    from swebench.harness.utils import make_test_spec

    bundle = SUITE / "repos" / (instance["repo"].split("/")[1] + ".bundle")
    testbed = workdir / "testbed"
    git(workdir, "clone", "-q", "--no-checkout", str(bundle), str(testbed))
    git(testbed, "-c", "advice.detachedHead=false", "checkout", "-q", instance["base_commit"])
    prepare(testbed)
    # the task image has no pytest plugins either; skipping their discovery halves startup
    env = {
        **os.environ,
        "HGM_TESTBED": str(testbed),
        "HGM_PYTHON": sys.executable,
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    proc = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    log_path = workdir / "test_output.txt"
    log_path.write_text(proc.stdout + proc.stderr)
    prediction = {"instance_id": instance["instance_id"], "model_patch": patch}
    report = get_eval_report(make_test_spec(instance), prediction, str(log_path), True)
    return Run(log=log_path.read_text(), report=report[instance["instance_id"]])


def evaluate_task(instance_id: str) -> dict[str, Run]:
    from swebench.harness.utils import make_test_spec

    instance = load(instance_id)
    raw_script = instance["eval_script"]
    swebench_script = make_test_spec(instance).eval_script

    def gold(testbed: Path) -> None:
        git(testbed, "apply", "-", stdin=instance["patch"])

    def nothing(testbed: Path) -> None:
        pass

    def cheat(testbed: Path) -> None:
        # the agent got hold of the hidden tests and removed the repository's own
        git(testbed, "apply", "-", stdin=instance["test_patch"])
        for path in (testbed / "tests").glob("test_*.py"):
            if not any(path.name in t for t in changed_files(instance["test_patch"])):
                path.unlink()

    runs = {}
    with tempfile.TemporaryDirectory(prefix="hgm-mini-check-") as tmp:
        for name, prepare, script in (
            ("gold", gold, raw_script),
            ("empty", nothing, swebench_script),
            ("cheat", cheat, raw_script),
        ):
            workdir = Path(tmp) / name
            workdir.mkdir()
            patch = instance["patch"] if name == "gold" else ""
            runs[name] = run_eval(instance, workdir, prepare, script, patch)
    return runs


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Run] | Exception]:
    if shutil.which("git") is None or shutil.which("bash") is None:
        pytest.skip("needs git and bash")

    def safe(instance_id: str):
        try:
            return evaluate_task(instance_id)
        except Exception as exc:  # reported per task below
            return exc

    with ThreadPoolExecutor(max_workers=min(4, 2 * (os.cpu_count() or 1))) as pool:
        return dict(zip(TASK_IDS, pool.map(safe, TASK_IDS)))


def runs_of(results, instance_id: str) -> dict[str, Run]:
    outcome = results[instance_id]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def test_suite_size_and_spread():
    instances = [load(i) for i in TASK_IDS]
    repos = {i["repo"] for i in instances}
    assert len(instances) >= 30
    assert len(repos) >= 5
    assert {i["difficulty"] for i in instances} == DIFFICULTIES
    for repo in repos:
        assert (SUITE / "repos" / (repo.split("/")[1] + ".bundle")).is_file()


def test_suite_is_small():
    total = sum(p.stat().st_size for p in SUITE.rglob("*") if p.is_file())
    assert total < 1_000_000


def test_swebench_dataset_check_accepts_the_suite():
    proc = subprocess.run(
        [sys.executable, "-m", "swebench.cli.cli", "dataset", "check", str(SUITE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("instance_id", TASK_IDS)
def test_task_metadata(instance_id: str):
    instance = load(instance_id)
    assert instance["instance_id"] == instance_id
    assert instance["difficulty"] in DIFFICULTIES
    assert instance["log_parser"] == "parse_log_pytest"
    assert instance["environment_setup_commit"] == instance["base_commit"]
    assert instance["FAIL_TO_PASS"], "nothing grades this task"
    assert not set(instance["FAIL_TO_PASS"]) & set(instance["PASS_TO_PASS"])
    assert instance["problem_statement"].strip()
    gold_files, test_files = changed_files(instance["patch"]), changed_files(instance["test_patch"])
    assert gold_files and not any(f.startswith("tests/") for f in gold_files)
    assert test_files and all(f.startswith("tests/") for f in test_files)
    assert "tests/" not in instance["problem_statement"], "the issue must not point at the tests"
    source_files = {f for f in gold_files if f.endswith(".py")}
    changed_lines = [
        line
        for line in instance["patch"].splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    if instance["difficulty"] == "one-line":
        assert len(source_files) == 1 and len(changed_lines) <= 3
    elif instance["difficulty"] == "two-files":
        assert len(source_files) >= 2
    added = "\n".join(l for l in instance["test_patch"].splitlines() if l.startswith("+"))
    for test in instance["FAIL_TO_PASS"]:
        name = test.split("::")[-1].split("[")[0]
        assert f"def {name}(" in added, f"{test} is not a test the test patch adds"


@pytest.mark.slow
@pytest.mark.parametrize("instance_id", TASK_IDS)
def test_gold_patch_resolves(results, instance_id: str):
    from swebench.harness.grading import parse_test_exit_code

    run = runs_of(results, instance_id)["gold"]
    assert run.report["resolved"], run.log[-3000:]
    assert parse_test_exit_code(run.log) == 0


@pytest.mark.slow
@pytest.mark.parametrize("instance_id", TASK_IDS)
def test_empty_patch_does_not_resolve(results, instance_id: str):
    from swebench.harness.grading import parse_test_exit_code

    run = runs_of(results, instance_id)["empty"]
    assert run.report["patch_successfully_applied"], run.log[-3000:]
    assert not run.report["resolved"]
    status = run.report["tests_status"]
    assert status["FAIL_TO_PASS"]["failure"], "some FAIL_TO_PASS test must fail at base"
    assert not status["PASS_TO_PASS"]["failure"], "PASS_TO_PASS tests must pass at base"
    assert parse_test_exit_code(run.log) not in (None, 0)


@pytest.mark.slow
@pytest.mark.parametrize("instance_id", TASK_IDS)
def test_hidden_tests_alone_do_not_resolve(results, instance_id: str):
    run = runs_of(results, instance_id)["cheat"]
    assert "error: patch failed" not in run.log, run.log[-3000:]
    assert run.report["patch_successfully_applied"], run.log[-3000:]
    assert not run.report["resolved"]
    assert not run.report["tests_status"]["PASS_TO_PASS"]["failure"], run.log[-3000:]


def test_suite_is_in_sync_with_its_sources(tmp_path):
    """Rebuilding the base commits from tools/mini_suite reproduces the committed data."""
    import importlib.util

    source = SUITE.parents[2] / "tools" / "mini_suite" / "generate.py"
    spec = importlib.util.spec_from_file_location("hgm_mini_generate", source)
    generate = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generate  # dataclasses look their module up there
    try:
        spec.loader.exec_module(generate)
    finally:
        del sys.modules[spec.name]
    rebuilt = []
    for repo in generate.all_repos():
        scratch = tmp_path / repo
        scratch.mkdir()
        generate.git(scratch, "init", "-q", "--bare", str(scratch / "repo.git"))
        tasks, _ = generate.build_repo(repo, scratch / "repo.git", scratch)
        rebuilt.extend(tasks)
    assert sorted(t.instance_id for t in rebuilt) == TASK_IDS
    for task in rebuilt:
        instance = load(task.instance_id)
        assert instance["base_commit"] == task.base_commit, "re-run tools/mini_suite/generate.py"
        assert instance["patch"] == task.gold_patch
        assert instance["test_patch"] == task.test_patch
        assert instance["problem_statement"] == task.problem_statement
        assert instance["eval_script"] == generate.eval_script(task)
