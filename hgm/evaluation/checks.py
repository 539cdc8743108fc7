"""Selection checks of a candidate patch, in a fresh sandbox that never holds the hidden tests.

Each check opens a sandbox from the task's image WITHOUT model access, puts the pristine
repository (`suite.prepare` on a copy of the task stripped of its gold patch, hidden test
patch, test lists and eval script: the grader is the only place those are used), and runs
one script that:
1. runs the agent's own reproduction scripts (new Python files of the patch that its
   trajectory ran) on the unpatched repository;
2. runs the repository's existing tests near the changed files (first time for a set of
   test files only: the result is kept as the baseline);
3. applies the patch (as the grader does: `git apply`, `--3way`, `patch --fuzz`), puts the
   test files it runs back to their committed state, compiles the changed Python files;
4. runs the same tests and the reproduction scripts again.
Regressions are tests that passed before the patch and do not after. A failure of the
machinery is recorded in `Features.error`, not blamed on the candidate.
"""

from __future__ import annotations

import re
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from evaluators.repos import GIT_ENV
from evaluators.suite import TESTBED, Environment, Suite
from evaluators.task import Task
from sandbox.api import Backend, Limits, SandboxSpec, Session

from hgm.evaluation.patches import FileChange, file_changes, is_test_path, source_lines
from hgm.evaluation.selection import REPRO_SCORE, Features
from hgm.evaluation.transcript import read_text

CHECK_DIR = "/tmp/hgm_select"
MAX_TEST_FILES = 20  # with no test file named after a changed module, run all of them only up to this many
_RUN_SCRIPT = re.compile(r"python[\d.]*\s+(?:-\S+\s+)*(\S+\.py)\b")
SCRIPT = r"""#!/bin/bash
# check.sh TESTBED DIR PYTHON SCRIPT_TIMEOUT TEST_TIMEOUT BASELINE(0|1)
cd "$1" || exit 3
D="$2"; PY="$3"; ST="$4"; TT="$5"
R="$D/results.txt"; : > "$R"
repro() {
  while IFS= read -r f; do [ -n "$f" ] || continue
    timeout "$ST" "$PY" "$f" > /dev/null 2>&1; echo "repro $1 $? $f" >> "$R"
  done < "$D/repro.txt"
}
tests() {
  [ -s "$D/tests.txt" ] || return 0
  timeout "$TT" "$PY" -m pytest -rA -p no:cacheprovider $(cat "$D/tests.txt") > "$D/$1.log" 2>&1
  echo "tests $1 $?" >> "$R"
}
if [ -s "$D/repro.txt" ]; then
  cp -r "$D/repro_files/." . && repro before
  while IFS= read -r f; do rm -f -- "$f"; done < "$D/repro.txt"
fi
[ "$6" = 1 ] && tests before
applied=""
for cmd in "git apply" "git apply --3way" "patch --batch --forward --fuzz=5 -p1 -i"; do
  if $cmd "$D/candidate.patch" > /dev/null 2>&1; then applied=1; break; fi
  git reset -q --hard; git clean -fdq
done
if [ -z "$applied" ]; then echo "apply failed" >> "$R"; exit 0; fi
echo "apply ok" >> "$R"
if [ -s "$D/tests.txt" ]; then git checkout -q HEAD -- $(cat "$D/tests.txt") 2>/dev/null; fi
while IFS= read -r f; do [ -n "$f" ] && [ -f "$f" ] || continue
  "$PY" -m py_compile "$f" > /dev/null 2>&1; echo "compile $? $f" >> "$R"
done < "$D/compile.txt"
tests after
[ -s "$D/repro.txt" ] && repro after
exit 0
"""


def visible_task(task: Task) -> Task:
    """The task as the agent may know it: no gold patch, hidden tests, test lists or eval script."""
    return task.model_copy(update={"patch": "", "test_patch": "", "FAIL_TO_PASS": [], "PASS_TO_PASS": [],
                                   "eval_script": ""})


def repro_scripts(changes: list[FileChange], trajectory: str) -> list[FileChange]:
    """New Python files of the patch that the agent ran (`python FILE`) during its attempt."""
    ran = {PurePosixPath(m).name for m in _RUN_SCRIPT.findall(trajectory)}
    return [c for c in changes if c.added_file and c.path.endswith(".py") and PurePosixPath(c.path).name in ran
            and not is_test_path(c.path)]


def related_tests(repo_files: list[str], changed: list[str]) -> list[str]:
    """The repository's test files named after a changed module (all of them if none is, and few)."""
    tests = sorted(f for f in repo_files if f.endswith(".py") and is_test_path(f) and PurePosixPath(f).name != "conftest.py")
    stems = set()
    for path in changed:
        p = PurePosixPath(path)
        if is_test_path(path) or p.suffix != ".py":
            continue
        stems.add(p.parent.name if p.stem == "__init__" else p.stem)
    stems.discard("")
    near = [t for t in tests if any(stem in PurePosixPath(t).stem for stem in stems)]
    if near:
        return near
    return tests if len(tests) <= MAX_TEST_FILES else []


def _pytest_status(log: str) -> dict[str, str]:
    from swebench.harness.log_parsers.python import parse_log_pytest

    return parse_log_pytest(log, None)


@dataclass(frozen=True)
class CheckLimits:
    test_timeout_s: float = 300.0
    script_timeout_s: float = 60.0
    sandbox_limits: Limits = field(default_factory=Limits)
    labels: tuple[tuple[str, str], ...] = ()


class SandboxChecker:
    """Computes the sandbox features of candidate patches for one task (keeps test baselines)."""

    def __init__(self, backend: Backend, suite: Suite, task: Task, environment: Environment, limits: CheckLimits,
                 *, run_tests: bool = True) -> None:
        self.backend, self.suite, self.limits, self.run_tests = backend, suite, limits, run_tests
        self.task = visible_task(task)
        self.environment = environment
        # the task's activated environment has its own python; else the backend's (as in grading)
        self.python = "python3" if environment.env.get("PATH") else backend.python
        self._baselines: dict[tuple[str, ...], dict[str, str]] = {}

    def spec(self) -> SandboxSpec:
        return SandboxSpec(image=self.environment.image, env={**GIT_ENV, **self.environment.env, "PYTHONDONTWRITEBYTECODE": "1"},
                           limits=self.limits.sandbox_limits,
                           labels={**dict(self.limits.labels), "hgm.purpose": "select", "hgm.task": self.task.instance_id})

    def check(self, patch: str, trajectory_path: str | Path | None) -> Features:
        """The candidate's features (agreement is filled in later, across candidates)."""
        changes = file_changes(patch)
        scripts = repro_scripts(changes, read_text(trajectory_path))
        skip = {c.path for c in scripts}
        feats = Features(empty=not patch.strip(), size=len(source_lines(changes, skip)),
                         repro_scripts=tuple(sorted(skip)))
        if feats.empty:
            return feats
        try:
            with self.backend.open(self.spec()) as session:
                testbed = self.suite.prepare(session, self.task, TESTBED)
                self._run(session, testbed, patch, changes, scripts, feats)
        except Exception as exc:  # noqa: BLE001 - the machinery failed: unknown, not the candidate's fault
            feats.error = f"check sandbox failed: {exc.__class__.__name__}: {exc}"[:500]
        return feats

    def _run(self, session: Session, testbed: str, patch: str, changes: list[FileChange],
             scripts: list[FileChange], feats: Features) -> None:
        where = session.resolve(testbed)
        tests: list[str] = []
        if self.run_tests and self.task.log_parser == "parse_log_pytest":
            listing = session.exec(f"git -C {shlex.quote(where)} ls-files", timeout=60)
            tests = related_tests(listing.stdout.splitlines(), [c.path for c in changes])
        key = tuple(tests)
        baseline_needed = bool(tests) and key not in self._baselines
        with tempfile.TemporaryDirectory(prefix="hgm-select-") as tmp:
            folder = Path(tmp) / "d"
            (folder / "repro_files").mkdir(parents=True)
            (folder / "candidate.patch").write_text(patch, encoding="utf-8", errors="surrogateescape")
            for name, lines in (("tests.txt", tests), ("repro.txt", [c.path for c in scripts]),
                                ("compile.txt", [c.path for c in changes if c.path.endswith(".py")])):
                (folder / name).write_text("".join(f"{line}\n" for line in lines))  # `read` needs the last newline
            (folder / "check.sh").write_text(SCRIPT)
            for script in scripts:
                target = folder / "repro_files" / script.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(script.content)
            session.put(CHECK_DIR, folder)
        d = session.resolve(CHECK_DIR)
        args = [where, d, self.python, f"{self.limits.script_timeout_s:g}", f"{self.limits.test_timeout_s:g}",
                "1" if baseline_needed else "0"]
        done = session.exec(f"bash {shlex.quote(d + '/check.sh')} {shlex.join(args)}",
                            timeout=2 * self.limits.test_timeout_s + 2 * len(scripts) * self.limits.script_timeout_s + 120)
        if done.exit_code != 0 or done.timed_out:
            feats.error = f"check script failed (exit {done.exit_code}, timed out {done.timed_out}): {done.stderr[-300:]}"
            return
        results = session.get(f"{CHECK_DIR}/results.txt").decode(errors="replace").splitlines()
        if baseline_needed:
            self._baselines[key] = _pytest_status(self._log(session, "before"))
        self._read(results, feats, tests, lambda: self._log(session, "after"), self._baselines.get(key, {}))

    def _log(self, session: Session, name: str) -> str:
        try:
            return session.get(f"{CHECK_DIR}/{name}.log").decode(errors="replace")
        except Exception:  # noqa: BLE001 - no log: the test run did not start
            return ""

    @staticmethod
    def _read(results: list[str], feats: Features, tests: list[str], after_log: Callable[[], str],
              baseline: dict[str, str]) -> None:
        repro: dict[str, dict[str, bool]] = {}
        compiled = True
        for line in results:
            parts = line.split(" ", 3)
            if parts[:2] == ["apply", "ok"]:
                feats.applies = True
            elif parts[:2] == ["apply", "failed"]:
                feats.applies = False
            elif parts[0] == "compile" and len(parts) >= 3:
                compiled = compiled and parts[1] == "0"
            elif parts[0] == "repro" and len(parts) == 4:
                repro.setdefault(parts[3], {})[parts[1]] = parts[2] == "0"
        if not feats.applies:
            return
        feats.syntax_ok = compiled
        if tests:
            after = _pytest_status(after_log())
            passed_before = [t for t, s in baseline.items() if s in ("PASSED", "XFAIL")]
            feats.tests_run = len(passed_before)
            feats.regressions = sum(1 for t in passed_before if after.get(t) not in ("PASSED", "XFAIL"))
        if repro:
            outcomes = {("fail" if not r.get("before", True) else "pass") + "_" + ("pass" if r.get("after") else "fail")
                        for r in repro.values()}
            feats.repro = min(outcomes, key=lambda o: REPRO_SCORE[o])  # several scripts: the worst counts
