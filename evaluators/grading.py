"""Grade a patch: fresh sandbox from the pristine environment, apply, run, parse with swebench.

Grading never reuses the agent's sandbox (the agent may have changed tests or
tools), and never trusts anything the agent left outside its diff. Steps: refuse a patch
carrying the task's hidden-test canary (`contaminated`); screen the patch for test
machinery (`evaluators.machinery`: strip it by default, or reject the patch, or allow
it); open a new sandbox from the task's image, put the pristine repository, apply the
model patch (`git apply`, then `--3way`, then `patch --fuzz`), run the task's eval
script (which applies the hidden test patch and prints swebench's start/end markers;
it carries the task's canary as a comment), and grade the log with
`swebench.harness.grading.get_eval_report`. swebench is imported lazily.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

from sandbox.api import Backend, Limits, SandboxError, SandboxSpec, Session

from evaluators import machinery
from evaluators.canary import canary_for, found_in, marked
from evaluators.outcomes import GradeResult, Outcome
from evaluators.repos import GIT_ENV, RepoError
from evaluators.suite import TESTBED, GradingEnv, Suite
from evaluators.task import Task

GRADING_DIR = "/tmp/hgm_grading"
APPLY_FAILED = ">>>>> Patch Apply Failed"  # swebench's marker
NO_REPOSITORY_CODE, APPLY_FAILED_CODE = 3, 4
# One exec does it all (fewer round trips): apply the patch the first way that works,
# back to pristine between attempts, then hand over to the eval script.
DRIVER = """#!/bin/bash
cd "$1" && git rev-parse -q --verify HEAD >/dev/null || { echo '>>>>> hgm: no git repository at '"$1"; exit 3; }
patch_file="$2"
if [ -s "$patch_file" ]; then
  applied=""
  for cmd in "git apply --verbose" "git apply --verbose --3way" "patch --batch --forward --fuzz=5 -p1 -i"; do
    if $cmd "$patch_file" > "$patch_file.out" 2>&1; then applied=1; break; fi
    git reset -q --hard; git clean -fdq
  done
  if [ -z "$applied" ]; then echo '>>>>> Patch Apply Failed'; tail -n 3 "$patch_file.out"; exit 4; fi
  cat "$patch_file.out"; echo '>>>>> Applied Patch'
fi
exec bash "$3" 2>&1
"""
# a patch may not reach into git's own directory (hooks would run during eval.sh)
GIT_DIR_PATH = re.compile(r"^(?:diff --git a/|--- a/|\+\+\+ b/|--- |\+\+\+ )(?:\./)?\.git/", re.M)
DEFAULT_TEST_TIMEOUT = 300.0
# exit codes of a shell that could not find or run the test command itself
MISSING_COMMAND_CODES = (126, 127)
INFRA_SIGNS = ("No module named pytest", "command not found")


def python_for(backend: Backend) -> str:
    """The interpreter eval scripts get as HGM_PYTHON on this backend (`backend.python`)."""
    return backend.python


def eval_environment(session: Session, backend: Backend, testbed: str) -> dict[str, str]:
    """Environment of the eval script: where the repo is and which Python to use."""
    return {
        **GIT_ENV,
        "HGM_TESTBED": session.resolve(testbed),
        "HGM_PYTHON": python_for(backend),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def localize_script(script: str, session: Session, testbed: str) -> str:
    """Point a script written for /testbed at where this session keeps the repository."""
    actual = session.resolve(testbed)
    return script if actual == TESTBED else script.replace(TESTBED, actual)


def swebench_spec(task: Task, env: GradingEnv) -> Any:
    """A swebench TestSpec carrying what grading reads (parser, tests, eval type)."""
    from swebench.types import TestSpec

    return TestSpec(
        instance_id=task.instance_id,
        image=env.image,
        eval_script_list=[],
        repo=task.repo,
        version=task.version,
        FAIL_TO_PASS=list(task.FAIL_TO_PASS),
        PASS_TO_PASS=list(task.PASS_TO_PASS),
        log_parser=env.log_parser,
        eval_type=task.eval_type,
    )


def grade_log(task: Task, log: str, patch: str, env: GradingEnv) -> tuple[Outcome, dict[str, Any], str]:
    """Grade a recorded test log with swebench; return (outcome, report, detail)."""
    from swebench.harness.grading import get_eval_report, parse_test_exit_code
    from swebench.harness.log_parsers import PARSER_REGISTRY

    if env.log_parser not in PARSER_REGISTRY:
        return Outcome.ERROR_INFRA, {}, f"unknown log parser {env.log_parser!r}"
    with tempfile.TemporaryDirectory(prefix="hgm-grade-") as tmp:
        log_path = Path(tmp) / "test_output.txt"
        log_path.write_text(log)
        prediction = {"instance_id": task.instance_id, "model_patch": patch, "model_name_or_path": "hgm"}
        report = get_eval_report(swebench_spec(task, env), prediction, str(log_path), True)[task.instance_id]
    if report.get("resolved"):
        return Outcome.RESOLVED, report, ""
    exit_code = parse_test_exit_code(log)
    if exit_code in MISSING_COMMAND_CODES or any(sign in log for sign in INFRA_SIGNS):
        return Outcome.ERROR_INFRA, report, f"the test command could not run (exit {exit_code})"
    if report.get("infra_failure"):
        return Outcome.ERROR_INFRA, report, f"environment failure: {report.get('infra_failure_reason')}"
    return Outcome.UNRESOLVED, report, ""


def _grade_once(
    patch: str, task: Task, suite: Suite, backend: Backend, timeout: float, limits: Limits
) -> GradeResult:
    """One grading attempt; every failure of the machinery becomes `error_infra`."""
    started = time.monotonic()

    def result(outcome: Outcome, **kw: Any) -> GradeResult:
        return GradeResult(task.instance_id, outcome, duration=time.monotonic() - started, **kw)

    if GIT_DIR_PATH.search(patch):
        return result(Outcome.PATCH_FAILED, detail="the patch touches .git/ (not allowed)")
    try:
        suite.ensure_environment(task, backend)  # the task's image on this backend (pulled or built once)
        env = suite.grading_env(task)
        spec = SandboxSpec(image=env.image, limits=limits, labels={"hgm.role": "grading", "hgm.task": task.instance_id})
        with backend.open(spec) as session:
            testbed = suite.prepare(session, task, env.testbed)
            with tempfile.TemporaryDirectory(prefix="hgm-grading-") as tmp:
                files = Path(tmp) / "hgm_grading"
                files.mkdir()
                (files / "model.patch").write_text(patch)
                script = marked(localize_script(env.eval_script, session, testbed), canary_for(task))
                (files / "eval.sh").write_text(script)
                (files / "driver.sh").write_text(DRIVER)
                session.put(GRADING_DIR, files)
            where = session.resolve(GRADING_DIR)
            args = (session.resolve(testbed), f"{where}/model.patch", f"{where}/eval.sh")
            run = session.exec(
                f"bash {shlex.quote(where + '/driver.sh')} {' '.join(shlex.quote(a) for a in args)} 2>&1",
                timeout=timeout,
                env={**eval_environment(session, backend, testbed), **env.env},  # task env activated
                workdir=testbed,
            )
        log = run.stdout + (f"\n{run.stderr}" if run.stderr else "")
        if run.exit_code == NO_REPOSITORY_CODE and ">>>>> hgm: no git repository" in log:
            return result(Outcome.ERROR_INFRA, log=log, detail=log.strip().splitlines()[-1])
        if run.exit_code == APPLY_FAILED_CODE and APPLY_FAILED in log:
            tail = [line for line in log.split(APPLY_FAILED, 1)[1].splitlines() if line.strip()]
            return result(Outcome.PATCH_FAILED, log=log, detail=tail[-1] if tail else "patch did not apply")
        if run.timed_out:
            return result(Outcome.TIMEOUT, log=log, detail=f"test run exceeded {timeout:g} s")
        outcome, report, detail = grade_log(task, log, patch, env)
        return result(outcome, report=report, log=log, detail=detail)
    except (SandboxError, RepoError, OSError) as exc:
        return result(Outcome.ERROR_INFRA, detail=f"{exc.__class__.__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - docker/backend errors must not be scored as the agent's
        return result(Outcome.ERROR_INFRA, detail=f"{exc.__class__.__name__}: {exc}")


def grade(
    patch: str,
    task: Task,
    suite: Suite,
    backend: Backend,
    *,
    timeout: float = DEFAULT_TEST_TIMEOUT,
    retries: int = 1,
    limits: Limits | None = None,
    run_empty: bool = False,
    test_machinery: str = machinery.DEFAULT_MODE,
) -> GradeResult:
    """Grade `patch` for `task` in a fresh sandbox of `backend`.

    An empty patch is `empty_patch` without running anything, unless `run_empty`
    (suite validation: the tests must fail on the untouched repository). A patch
    carrying the task's canary is `contaminated` (not scored). Test machinery in the
    patch is handled by `test_machinery`: `strip` (grade the rest), `reject` (scored
    unresolved) or `allow` (graded as written); the result then carries the flag
    `machinery:<mode>`. Infrastructure errors are retried `retries` times and then
    returned as `error_infra` (never scored).
    """
    machinery.check_mode(test_machinery)
    if not patch.strip() and not run_empty:
        return GradeResult(task.instance_id, Outcome.EMPTY_PATCH, detail="the patch is empty")
    if found_in(canary_for(task), patch):
        return GradeResult(task.instance_id, Outcome.CONTAMINATED,
                           detail="the patch carries the task's hidden-test canary: hidden tests reached the agent")
    patch, flags, note = _screen(patch, task, test_machinery)
    if flags and (test_machinery == "reject" or not patch.strip()):
        return GradeResult(task.instance_id, Outcome.UNRESOLVED, detail=note, flags=flags)
    limits = limits or Limits()
    outcome = _grade_once(patch, task, suite, backend, timeout, limits)
    for _ in range(retries):
        if outcome.outcome is not Outcome.ERROR_INFRA:
            break
        outcome = _grade_once(patch, task, suite, backend, timeout, limits)
    if flags:
        detail = f"{outcome.detail}; {note}" if outcome.detail else note
        outcome = dataclasses.replace(outcome, detail=detail, flags=flags)
    return outcome


def _screen(patch: str, task: Task, mode: str) -> tuple[str, tuple[str, ...], str]:
    """(patch to grade, flags, note) after handling the test machinery `patch` touches."""
    screened = machinery.screen(patch, task.test_patch)
    if not screened.touched:
        return patch, (), ""
    flags = (machinery.flag(mode),)
    if mode == "reject":
        return patch, flags, f"rejected: the patch touches test machinery: {screened.describe()}"
    if mode == "allow":
        return patch, flags, f"test machinery allowed and graded as written: {screened.describe()}"
    note = f"test machinery stripped before grading: {screened.describe()}"
    if not screened.kept.strip():
        note += "; nothing else was left to grade"
    return screened.kept, flags, note


def summarize(results: list[GradeResult]) -> Mapping[str, int]:
    """Count of each outcome."""
    counts = {o.value: 0 for o in Outcome}
    for r in results:
        counts[r.outcome.value] += 1
    return counts


__all__ = ["grade", "grade_log", "python_for", "summarize", "swebench_spec"]
