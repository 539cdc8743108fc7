"""Build hgm's bundled mini suite (evaluators/suites/mini) from the sources next to this file.

    python tools/mini_suite/generate.py            # rebuild the suite in place
    python tools/mini_suite/generate.py --check    # rebuild into a temp dir, diff, exit 1 on drift

Sources:
    repos/<name>/            the clean ("fixed") tree of each small repository, tests included
    tasks/<name>/<n>.yaml    one task: a bug (or a removed feature) as text edits to the clean
                             tree, the hidden tests as edits to its test files, a problem
                             statement, a difficulty and a creation date

Every task's base_commit is a ROOT commit whose tree is the clean tree with that task's bug
edits applied, so its ancestry never holds the fix; the gold patch is the diff back to the
clean tree (source files only), the test patch the diff that adds the task's tests. All
commits use fixed names and dates, so re-running reproduces the same hashes. FAIL_TO_PASS and
PASS_TO_PASS are measured, not written by hand: the eval script is run on the base commit
with and without the gold patch, and the pytest -rA output is parsed with swebench's parser.
Output is swebench 5's task-repo layout (see swebench.task.repo) plus repos/<name>.bundle.
"""

from __future__ import annotations

import argparse
import datetime as dt
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "evaluators" / "suites" / "mini"

ORG = "hgm-mini"
DATASET = "hgm-mini"
SPLIT = "test"
DIFFICULTIES = ("one-line", "multi-line", "two-files", "feature")
IDENTITY = ("hgm mini-suite", "mini-suite@hgm.invalid")
HEREDOC = "EOF_HGM"
SKIP_NAMES = {"__pycache__", ".pytest_cache"}

# Hermetic git: no user or system config may change hashes or diff text.
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": IDENTITY[0],
    "GIT_AUTHOR_EMAIL": IDENTITY[1],
    "GIT_COMMITTER_NAME": IDENTITY[0],
    "GIT_COMMITTER_EMAIL": IDENTITY[1],
    "LC_ALL": "C",
    "TZ": "UTC",
}


class SuiteError(Exception):
    """A task source is malformed or the task does not behave as a task must."""


@dataclass
class Task:
    repo: str
    number: int
    difficulty: str
    created_at: str
    problem_statement: str
    bug: list[dict]
    tests: list[dict]
    instance_id: str = ""
    base_commit: str = ""
    gold_patch: str = ""
    test_patch: str = ""
    test_files: list[str] = field(default_factory=list)
    new_test_files: list[str] = field(default_factory=list)
    eval_script: str = ""
    fail_to_pass: list[str] = field(default_factory=list)
    pass_to_pass: list[str] = field(default_factory=list)


def git(cwd: Path, *args: str, env: dict | None = None, stdin: str | None = None) -> str:
    """Run git hermetically in ``cwd``; return stdout, raise SuiteError on failure."""
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    proc = subprocess.run(
        ["git", "-c", "core.autocrlf=false", "-c", "pack.threads=1", *args],
        cwd=cwd,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SuiteError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout


# ---------------------------------------------------------------- sources


def read_tree(directory: Path) -> dict[str, str]:
    """All files under ``directory`` as {relative posix path: text}."""
    files = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not SKIP_NAMES & set(path.parts):
            files[path.relative_to(directory).as_posix()] = path.read_text()
    return files


def repo_version(clean: dict[str, str]) -> str:
    match = re.search(r'^version = "(\d+\.\d+)', clean.get("pyproject.toml", ""), re.M)
    if not match:
        raise SuiteError("pyproject.toml of a suite repository needs a version")
    return match.group(1)


def load_tasks(repo: str) -> list[Task]:
    tasks = []
    for path in sorted((HERE / "tasks" / repo).glob("*.yaml"), key=lambda p: int(p.stem)):
        data = yaml.safe_load(path.read_text())
        where = path.relative_to(HERE)
        missing = {"difficulty", "created_at", "problem_statement", "bug", "tests"} - set(data)
        if missing:
            raise SuiteError(f"{where}: missing {', '.join(sorted(missing))}")
        if data["difficulty"] not in DIFFICULTIES:
            raise SuiteError(f"{where}: difficulty must be one of {DIFFICULTIES}")
        task = Task(
            repo=repo,
            number=int(path.stem),
            difficulty=data["difficulty"],
            created_at=str(data["created_at"]),
            problem_statement=data["problem_statement"].rstrip("\n") + "\n",
            bug=data["bug"],
            tests=data["tests"],
        )
        task.instance_id = f"{ORG}__{repo}-{task.number}"
        tasks.append(task)
    return tasks


def apply_edits(files: dict[str, str], edits: list[dict], where: str) -> dict[str, str]:
    """Return a copy of ``files`` with text edits applied.

    An edit is {file, old, new} (whole lines, dedented; ``old`` must occur exactly once),
    {file, append},
    {file, create} (a new file) or {file, remove: true}.
    """
    files = dict(files)
    for edit in edits:
        name = edit["file"]
        if "create" in edit:
            if name in files:
                raise SuiteError(f"{where}: {name} already exists")
            files[name] = edit["create"]
            continue
        if name not in files:
            raise SuiteError(f"{where}: no file {name}")
        if edit.get("remove"):
            del files[name]
        elif "append" in edit:
            files[name] = files[name].rstrip("\n") + "\n\n\n" + edit["append"]
        else:
            files[name] = replace_block(files[name], edit["old"], edit["new"], f"{where}: {name}")
    return files


def indent(block: str, prefix: str) -> str:
    return "".join(prefix + line if line.strip() else line for line in block.splitlines(True))


def replace_block(text: str, old: str, new: str, where: str) -> str:
    """Replace the one occurrence of the whole lines ``old`` at any indentation by ``new``.

    ``old`` and ``new`` are written dedented (as YAML block scalars come out); the match
    fixes the indentation, which is then applied to ``new`` as well.
    """
    matches = []
    for width in range(0, 41):
        candidate = indent(old, " " * width)
        start = text.find(candidate)
        while start != -1:
            if start == 0 or text[start - 1] == "\n":
                matches.append((width, start))
            start = text.find(candidate, start + 1)
    if len(matches) != 1:
        raise SuiteError(f"{where}: 'old' block matches {len(matches)} times, not once")
    width, start = matches[0]
    before, rest = text[:start], text[start + len(indent(old, " " * width)) :]
    if not new.strip():
        # deleting a block between blank lines: keep one separator, not both
        blank_before = len(before) - len(before.rstrip("\n")) - 1
        blank_after = len(rest) - len(rest.lstrip("\n"))
        rest = rest[min(blank_before, blank_after) :]
    return before + indent(new, " " * width) + rest


# ---------------------------------------------------------------- git objects


def write_tree(git_dir: Path, files: dict[str, str], scratch: Path) -> str:
    """Store ``files`` as a git tree object and return its id."""
    work = scratch / "tree"
    shutil.rmtree(work, ignore_errors=True)
    for name, text in files.items():
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    index = scratch / "index"
    index.unlink(missing_ok=True)
    env = {"GIT_INDEX_FILE": str(index), "GIT_WORK_TREE": str(work), "GIT_DIR": str(git_dir)}
    git(work, "add", "-A", ".", env=env)
    return git(work, "write-tree", env=env).strip()


def commit_date(task: Task) -> str:
    created = dt.datetime.fromisoformat(task.created_at.replace("Z", "+00:00"))
    return (created - dt.timedelta(days=2, hours=3)).strftime("%Y-%m-%dT%H:%M:%S+0000")


def diff_trees(git_dir: Path, old: str, new: str) -> str:
    return git(git_dir, "diff", "--no-color", "--no-ext-diff", "--no-renames", "--full-index", old, new)


def changed_paths(patch: str) -> list[str]:
    return sorted(set(re.findall(r"^diff --git a/(\S+) b/", patch, re.M)))


def is_test_path(path: str) -> bool:
    return path.startswith("tests/")


def build_repo(repo: str, git_dir: Path, scratch: Path) -> tuple[list[Task], str]:
    """Create every task's base commit in ``git_dir``; fill in patches. Returns (tasks, version)."""
    clean = read_tree(HERE / "repos" / repo)
    version = repo_version(clean)
    tasks = load_tasks(repo)
    clean_tree = write_tree(git_dir, clean, scratch)
    for task in tasks:
        where = f"tasks/{repo}/{task.number}.yaml"
        buggy = apply_edits(clean, task.bug, where + " bug")
        if buggy == clean:
            raise SuiteError(f"{where}: the bug edits change nothing")
        sloppy = [n for n, text in buggy.items() if n.endswith(".py") and "\n\n\n\n" in text]
        if sloppy:
            raise SuiteError(f"{where}: the bug edits leave 3+ blank lines in {sloppy}")
        with_tests = apply_edits(buggy, task.tests, where + " tests")
        base_tree = write_tree(git_dir, buggy, scratch)
        date = commit_date(task)
        env = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        message = f"{repo} {version}\n"
        task.base_commit = git(git_dir, "commit-tree", base_tree, env=env, stdin=message).strip()
        git(git_dir, "update-ref", f"refs/heads/task/{task.instance_id}", task.base_commit)
        task.gold_patch = diff_trees(git_dir, base_tree, clean_tree)
        task.test_patch = diff_trees(git_dir, base_tree, write_tree(git_dir, with_tests, scratch))
        gold_paths, test_paths = changed_paths(task.gold_patch), changed_paths(task.test_patch)
        if any(is_test_path(p) for p in gold_paths):
            raise SuiteError(f"{where}: the bug edits touch tests: {gold_paths}")
        if not test_paths or not all(is_test_path(p) for p in test_paths):
            raise SuiteError(f"{where}: the test edits must touch tests/ only: {test_paths}")
        task.new_test_files = sorted(p for p in test_paths if p not in buggy)
        task.test_files = sorted(
            {p for p in buggy if is_test_path(p) and re.search(r"/test_[^/]*\.py$", p)}
            | set(task.new_test_files)
        )
    return tasks, version


# ---------------------------------------------------------------- task files


EVAL_TEMPLATE = """\
#!/bin/bash
set -uxo pipefail
# {instance_id}: generated by tools/mini_suite/generate.py (edit the sources there, not this file).
#
# Contract: runs in a FRESH sandbox where the repository is at ${{HGM_TESTBED:-/testbed}},
# checked out at base_commit with the model patch already applied. It restores the test
# files it runs to base_commit (an agent's edits to them do not count), applies the hidden
# test patch, runs pytest -rA between swebench's start/end markers and records pytest's
# exit status after the end marker as swebench's "Test Exit Code" line. Only python3 with
# pytest is needed (${{HGM_PYTHON:-python3}}); no network.
# The `(exit ...)` line keeps $? intact for swebench's make_test_spec, which inserts its own
# capture of $? just before the end marker.
exec 2>&1
cd "${{HGM_TESTBED:-/testbed}}"
# the sandbox may hand over a repository owned by another user
git -c safe.directory='*' checkout {base_commit} -- {restore}
{remove}git -c safe.directory='*' apply -v - <<'{heredoc}'
{test_patch}{heredoc}
: '>>>>> Start Test Output'
"${{HGM_PYTHON:-python3}}" -m pytest -rA -p no:cacheprovider {test_files}
SWEBENCH_TEST_EXIT_CODE=$?
(exit "$SWEBENCH_TEST_EXIT_CODE")
: '>>>>> End Test Output'
echo ">>>>> Test Exit Code: $SWEBENCH_TEST_EXIT_CODE"
git -c safe.directory='*' checkout {base_commit} -- {restore}
"""


def eval_script(task: Task) -> str:
    existing = [p for p in task.test_files if p not in task.new_test_files]
    if HEREDOC in task.test_patch:
        raise SuiteError(f"{task.instance_id}: the test patch contains {HEREDOC}")
    remove = ""
    if task.new_test_files:
        remove = f"rm -f -- {' '.join(task.new_test_files)}  # files the test patch adds\n"
    return EVAL_TEMPLATE.format(
        instance_id=task.instance_id,
        base_commit=task.base_commit,
        restore=" ".join(existing),
        remove=remove,
        heredoc=HEREDOC,
        test_patch=task.test_patch,
        test_files=" ".join(task.test_files),
    )


def image_name(instance_id: str) -> str:
    from swebench.task.checks import expected_image

    return expected_image(instance_id)


def dockerfile(repo: str) -> str:
    return (
        "# hgm builds this task's environment itself: it starts from hgm-base:latest (Debian\n"
        "# python3 + python3-pytest, made by `hgm sandbox build-base`), clones\n"
        f"# repos/{repo}.bundle of this suite into /testbed and checks out base_commit.\n"
        "# The repository has no third-party dependencies and no image registry is used.\n"
        "FROM hgm-base:latest\n"
        "WORKDIR /testbed\n"
    )


def task_meta(task: Task, version: str) -> dict:
    return {
        "instance_id": task.instance_id,
        "repo": f"{ORG}/{task.repo}",
        "version": version,
        "base_commit": task.base_commit,
        "environment_setup_commit": task.base_commit,
        "split": SPLIT,
        "datasets": [DATASET],
        "image": image_name(task.instance_id),
        "log_parser": "parse_log_pytest",
        "eval_type": "pass_and_fail",
        "created_at": task.created_at,
        "difficulty": task.difficulty,
    }


def write_task(out: Path, task: Task, version: str) -> None:
    from swebench.task.repo import dump_tests, dump_yaml

    directory = out / "tasks" / task.instance_id
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "task.yaml": dump_yaml(task_meta(task, version)),
        "tests.json": dump_tests(
            {"FAIL_TO_PASS": task.fail_to_pass, "PASS_TO_PASS": task.pass_to_pass}
        ),
        "problem_statement.md": task.problem_statement,
        "gold.patch": task.gold_patch,
        "test.patch": task.test_patch,
        "eval.sh": task.eval_script,
        "Dockerfile": dockerfile(task.repo),
    }
    for name, text in files.items():
        (directory / name).write_text(text)
    os.chmod(directory / "eval.sh", 0o755)


# ---------------------------------------------------------------- measuring tests


def run_eval(bundle: Path, task: Task, patch: str, scratch: Path) -> dict[str, str]:
    """Clone the bundle at base_commit, apply ``patch``, run eval.sh; return the status map."""
    from swebench.harness.log_parsers import PARSER_REGISTRY

    testbed = scratch / "testbed"
    shutil.rmtree(testbed, ignore_errors=True)
    git(scratch, "clone", "-q", "--no-checkout", str(bundle), str(testbed))
    git(testbed, "checkout", "-q", task.base_commit)
    if patch:
        git(testbed, "apply", "-", stdin=patch)
    env = {
        **os.environ,
        "HGM_TESTBED": str(testbed),
        "HGM_PYTHON": sys.executable,
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    proc = subprocess.run(
        ["bash", "-c", task.eval_script], env=env, capture_output=True, text=True, timeout=300
    )
    log = proc.stdout
    if ">>>>> Start Test Output" not in log or ">>>>> End Test Output" not in log:
        raise SuiteError(f"{task.instance_id}: eval.sh printed no markers:\n{log[-2000:]}")
    inside = log.split(">>>>> Start Test Output")[1].split(">>>>> End Test Output")[0]
    return PARSER_REGISTRY["parse_log_pytest"](inside, None)


def measure(bundle: Path, task: Task) -> None:
    """Fill FAIL_TO_PASS / PASS_TO_PASS from real runs; check the task is a real task."""
    with tempfile.TemporaryDirectory(prefix="hgm-mini-") as tmp:
        before = run_eval(bundle, task, "", Path(tmp))
        after = run_eval(bundle, task, task.gold_patch, Path(tmp))
    cut = [t for t in after if t.count("[") != t.count("]")]
    if cut:
        raise SuiteError(f"{task.instance_id}: test ids with spaces confuse parse_log_pytest: {cut}")
    broken = sorted(t for t, s in after.items() if s not in ("PASSED", "XFAIL"))
    if broken:
        raise SuiteError(f"{task.instance_id}: with the gold patch these fail: {broken}")
    task.fail_to_pass = sorted(t for t in after if before.get(t) != "PASSED")
    task.pass_to_pass = sorted(t for t in after if before.get(t) == "PASSED")
    if not task.fail_to_pass:
        raise SuiteError(f"{task.instance_id}: no test fails before the gold patch")
    added = "\n".join(l for l in task.test_patch.splitlines() if l.startswith("+"))
    stray = [t for t in task.fail_to_pass if f"def {t.split('::')[-1].split('[')[0]}(" not in added]
    if stray:
        raise SuiteError(f"{task.instance_id}: tests the test patch does not add fail at base: {stray}")


# ---------------------------------------------------------------- whole suite


def bundle_heads(bundle: Path) -> str:
    return git(bundle.parent, "bundle", "list-heads", str(bundle))


def build_suite(out: Path, repos: list[str], workers: int = 2) -> None:
    """Write the whole suite into ``out`` (which may already hold an older build)."""
    from swebench.task.repo import dump_yaml

    (out / "repos").mkdir(parents=True, exist_ok=True)
    (out / "tasks").mkdir(parents=True, exist_ok=True)
    expected_dirs: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="hgm-mini-build-") as tmp:
        for repo in repos:
            scratch = Path(tmp) / repo
            git_dir = scratch / "repo.git"
            scratch.mkdir()
            git(scratch, "init", "-q", "--bare", str(git_dir))
            tasks, version = build_repo(repo, git_dir, scratch)
            fresh = scratch / f"{repo}.bundle"
            git(git_dir, "bundle", "create", "-q", str(fresh), "--all")
            target = out / "repos" / f"{repo}.bundle"
            # pack bytes may differ between git versions; keep the old file if refs agree
            if not target.exists() or bundle_heads(target) != bundle_heads(fresh):
                shutil.copyfile(fresh, target)
            for task in tasks:
                task.eval_script = eval_script(task)
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(lambda t: measure(target, t), tasks))
            for task in tasks:
                write_task(out, task, version)
                expected_dirs.add(task.instance_id)
            print(f"{repo}: {len(tasks)} tasks", file=sys.stderr)
    for stale in (out / "tasks").iterdir():
        if stale.name not in expected_dirs:
            shutil.rmtree(stale)
    for stale in (out / "repos").iterdir():
        if stale.stem not in repos:
            stale.unlink()
    config = {"datasets": [DATASET], "splits": [SPLIT]}
    (out / "sweb.yaml").write_text(
        "# hgm's bundled mini suite: generated by tools/mini_suite/generate.py\n" + dump_yaml(config)
    )


def all_repos() -> list[str]:
    return sorted(p.name for p in (HERE / "repos").iterdir() if p.is_dir())


def drift(a: Path, b: Path) -> list[str]:
    """Relative paths that differ between two suite directories (bundles compared by refs)."""
    names = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    names |= {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    differing = []
    for name in sorted(names):
        left, right = a / name, b / name
        if not (left.is_file() and right.is_file()):
            differing.append(str(name))
        elif name.suffix == ".bundle":
            if bundle_heads(left) != bundle_heads(right):
                differing.append(str(name))
        elif not filecmp.cmp(left, right, shallow=False):
            differing.append(str(name))
    return differing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="rebuild in a temp dir and diff")
    parser.add_argument("--out", type=Path, default=OUT, help="suite directory to write")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        if args.check:
            with tempfile.TemporaryDirectory(prefix="hgm-mini-check-") as tmp:
                build_suite(Path(tmp), all_repos(), args.workers)
                differing = drift(args.out, Path(tmp))
            if differing:
                print("out of date: " + " ".join(differing), file=sys.stderr)
                return 1
            print("mini suite is up to date", file=sys.stderr)
            return 0
        build_suite(args.out, all_repos(), args.workers)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
