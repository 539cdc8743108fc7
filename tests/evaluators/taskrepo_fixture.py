"""Build a tiny custom suite in swebench's task-repo layout (hgm extension: repos/*.bundle).

One pure-Python repository `hgm-test/calc` with a bug in `add`, and tasks:
- calc-1: fix `add` (F2P test_add, P2P test_mean);
- calc-2: new feature `clamp` (F2P test_clamp, P2P test_mean).
The layout passes `swebench dataset check` (sweb.yaml, Dockerfile, derived image name).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

CALC = '''"""Small arithmetic helpers."""


def add(a, b):
    return a - b


def mean(xs):
    return sum(xs) / len(xs)
'''
TESTS = '''from calc import mean


def test_mean():
    assert mean([1, 2, 3]) == 2
'''
DOCKERFILE = "FROM swebench/sweb.env.py.x86_64.calc:latest\nWORKDIR /testbed\n"


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


def diff_of(repo: Path, edits: dict[str, str]) -> str:
    """The unified diff that turns the checked-out tree into one with `edits` applied."""
    for name, text in edits.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    patch = git(repo, "diff", "--cached")
    git(repo, "reset", "-q", "--hard")
    git(repo, "clean", "-fdq")
    return patch


def eval_script(base: str, test_files: list[str], test_patch: str) -> str:
    files = " ".join(test_files)
    return f"""#!/bin/bash
set -uxo pipefail
cd "${{HGM_TESTBED:-/testbed}}"
git checkout {base} -- {files}
git apply --verbose - <<'EOF_HGM_TEST_PATCH'
{test_patch}EOF_HGM_TEST_PATCH
echo '>>>>> Start Test Output'
${{HGM_PYTHON:-python3}} -m pytest -rA -p no:cacheprovider {files}
echo '>>>>> End Test Output'
git checkout {base} -- {files}
"""


def expected_image(instance_id: str) -> str:
    return f"swebench/sweb.eval.x86_64.{instance_id}:latest".lower().replace("__", "_1776_")


def write_task(root: Path, instance_id: str, base: str, statement: str, gold: str, test_patch: str,
               f2p: list[str], p2p: list[str], test_files: list[str]) -> Path:
    task_dir = root / "tasks" / instance_id
    task_dir.mkdir(parents=True)
    meta = {"instance_id": instance_id, "repo": "hgm-test/calc", "version": "0.1", "base_commit": base,
            "split": "test", "datasets": ["hgm-test/calc-tasks"], "image": expected_image(instance_id),
            "log_parser": "parse_log_pytest", "eval_type": "pass_and_fail",
            "environment_setup_commit": base, "created_at": "2026-01-01T00:00:00Z"}
    (task_dir / "task.yaml").write_text(yaml.safe_dump(meta, sort_keys=True))
    (task_dir / "tests.json").write_text(json.dumps({"FAIL_TO_PASS": f2p, "PASS_TO_PASS": p2p}, indent=2))
    (task_dir / "problem_statement.md").write_text(statement)
    (task_dir / "gold.patch").write_text(gold)
    (task_dir / "test.patch").write_text(test_patch)
    (task_dir / "eval.sh").write_text(eval_script(base, test_files, test_patch))
    (task_dir / "Dockerfile").write_text(DOCKERFILE)
    return task_dir


def build_task_repo(root: Path) -> Path:
    """Create the suite at `root`; return `root`."""
    work = root.parent / f"{root.name}-work"
    work.mkdir(parents=True)
    git(work, "init", "-q", "-b", "main")
    (work / "calc.py").write_text(CALC)
    (work / "tests").mkdir()
    (work / "tests" / "test_calc.py").write_text(TESTS)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "calc with a bug")
    base = git(work, "rev-parse", "HEAD").strip()

    fixed = CALC.replace("return a - b", "return a + b")
    gold1 = diff_of(work, {"calc.py": fixed})
    tests1 = TESTS.replace("from calc import mean", "from calc import add, mean") + (
        "\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    test_patch1 = diff_of(work, {"tests/test_calc.py": tests1})

    clamp = CALC + "\n\ndef clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n"
    gold2 = diff_of(work, {"calc.py": clamp})
    tests2 = TESTS.replace("from calc import mean", "from calc import clamp, mean") + (
        "\n\ndef test_clamp():\n    assert clamp(5, 0, 3) == 3\n    assert clamp(-1, 0, 3) == 0\n")
    test_patch2 = diff_of(work, {"tests/test_calc.py": tests2})

    # a commit after the base (the fix) that must never reach a sandbox
    (work / "calc.py").write_text(fixed)
    git(work, "commit", "-qam", "fix add (FUTURE)")

    root.mkdir(parents=True, exist_ok=True)
    (root / "sweb.yaml").write_text(yaml.safe_dump({"datasets": ["hgm-test/calc-tasks"], "splits": ["test"]}))
    (root / "repos").mkdir()
    git(work, "bundle", "create", "-q", str(root / "repos" / "calc.bundle"), "--all")
    write_task(root, "calc-1", base,
               "`add(2, 3)` returns -1\n\nI expected `calc.add(2, 3)` to be 5 but got -1.\n",
               gold1, test_patch1, ["tests/test_calc.py::test_add"], ["tests/test_calc.py::test_mean"],
               ["tests/test_calc.py"])
    write_task(root, "calc-2", base,
               "Feature request: clamp\n\nPlease add `calc.clamp(x, lo, hi)` that limits x to [lo, hi].\n",
               gold2, test_patch2, ["tests/test_calc.py::test_clamp"], ["tests/test_calc.py::test_mean"],
               ["tests/test_calc.py"])
    return root
