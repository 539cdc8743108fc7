"""The one evaluation path: an agent version on one task, graded, as an `EvalRecord`.

`hgm run` (through the loop's job handler) and `hgm eval` both call `evaluate`:
1. a sandbox from the task's image gets the pristine repository (`suite.prepare`) and the
   model access of the call's tags; `run_agent` runs `python -m agent solve` there;
2. secrets are redacted from everything the agent produced (patch, trajectory, result,
   log) before anything is graded or saved; if the task's hidden-test canary shows up in
   the trajectory, the agent's output or its patch, the evaluation is `contaminated`
   (not scored, not graded);
3. its patch is graded by `evaluators.grading.grade` in a FRESH sandbox, test machinery
   handled as `EvalSetup.test_machinery` says (strip by default; recorded as a flag);
4. the outcome becomes an archive status: an agent that runs out of time without leaving
   a patch is a `timeout` (a measurement: the agent's own doing); sandbox or environment
   failures are `error_infra` (never scored), and so is an attempt during which the model
   provider failed (rejected key, unknown model, outage after the gateway's retries).
   Dollars and tokens come from the gateway's cost book (the call tag `job`), not from
   what the agent claims.

With an attempts policy of more than one attempt (`EvalSetup.attempts`), step 1 becomes
`hgm.evaluation.attempts`: attempts evolved over generations, checked without the hidden
tests, one selected; only the selected patch is graded in step 2, and every attempt comes
back in the record (`EvalRecord.attempts`). The agent's calls of attempt N carry the tag
`attempt=<job>.N` (the gateway's per-attempt dollar cap) and every call of the evaluation
`evaluation=<job>` (its token and dollar caps); hgm's own calls for it are tagged with
their `purpose` (summarize, revise, recombine, refine: also with the attempt they serve;
judge).

Artifacts (patch, trajectory, agent result and log, test log, grading report; with several
attempts also `attempts/`) are kept in `out_dir`; their paths are stored relative to
`EvalSetup.root`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from archive.records import EvalRecord
from evaluators.canary import canary_for, found_in
from evaluators.grading import grade
from evaluators.machinery import DEFAULT_MODE
from evaluators.suite import TESTBED, Environment, Suite
from evaluators.task import Task
from sandbox.api import Backend, Limits, SandboxSpec

from hgm.evaluation.attempts import REPLY_SCHEMAS, AttemptEvolution, AttemptsOutcome, AttemptsPolicy
from hgm.evaluation.checks import CheckLimits, SandboxChecker
from hgm.evaluation.run_agent import AgentLimits, AgentRun, run_agent
from hgm.gateway.access import ModelAccess
from hgm.gateway.chat import ChatFactory
from hgm.gateway.costs import CostBook
from hgm.gateway.records import PROVIDER_FAILED
from hgm.gateway.redact import Redactor


@dataclass(frozen=True)
class SolveLimits:
    """Limits of one evaluation: the agent's steps and time, the grading's time, the sandbox."""

    max_steps: int = 6
    solve_timeout_s: float = 300.0
    test_timeout_s: float = 300.0
    sandbox_limits: Limits = field(default_factory=Limits)
    labels: tuple[tuple[str, str], ...] = ()  # extra sandbox labels, e.g. (("hgm.run", name),)


@dataclass(frozen=True)
class EvalSetup:
    """What every evaluation of one run (or one `hgm eval`) shares."""

    backend: Backend
    suite: Suite
    access: Callable[[Mapping[str, object]], ModelAccess]  # the gateway's `access`
    costs: CostBook
    limits: SolveLimits = field(default_factory=SolveLimits)
    root: Path | None = None  # artifact paths are stored relative to it when inside it
    # told how each task's environment was obtained (pulled, built, fallback, ...)
    on_environment: Callable[[Task, Environment], None] | None = None
    test_machinery: str = DEFAULT_MODE  # strip | reject | allow (evaluators.machinery)
    redact: Callable[[str], str] = field(default_factory=Redactor.from_environ)  # the gateway's secrets
    attempts: AttemptsPolicy = field(default_factory=AttemptsPolicy)  # 1 x 1: one attempt, as always
    chat: ChatFactory | None = None  # hgm's own JSON-reply calls (needed when attempts.several)


def evaluate(
    setup: EvalSetup, node_id: int, agent_dir: Path, task: Task, out_dir: Path, tags: Mapping[str, object]
) -> EvalRecord:
    """Run the agent in `agent_dir` (a folder holding `agent/`) on `task` and grade its patch.

    `tags` label the model calls; their `job` value keys the cost book.
    """
    started, t0 = time.time(), time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    job = str(tags.get("job") or task.instance_id)
    tags = {**tags, "job": job, "evaluation": job}
    base: dict[str, Any] = {"node_id": node_id, "task_id": task.instance_id, "started": started}

    def record(status: str, detail: str, **extra: Any) -> EvalRecord:
        cost, tokens = setup.costs.job(job)
        return EvalRecord(**base, status=status, detail=setup.redact(detail), cost_usd=cost, tokens=tokens,
                          total_s=time.monotonic() - t0, **extra)

    try:
        if setup.attempts.several:
            outcome = _evolve(setup, agent_dir, task, out_dir, tags)
            run = outcome.selected.run
            assert run is not None
            base["attempts"] = outcome.records(lambda p: _rel(setup.root, p))
        else:
            run = _solve(setup, agent_dir, task, {**tags, "attempt": f"{job}.1"})
    except Exception as exc:  # noqa: BLE001 - sandbox, engine or suite failure: not the agent's doing
        return record("error_infra", f"agent sandbox failed: {exc.__class__.__name__}: {exc}"[:2000])
    run = run.redacted(setup.redact)
    run.save(out_dir)
    paths = {"trajectory_path": _rel(setup.root, out_dir / "trajectory.jsonl")}
    agent_log = {"log_path": _rel(setup.root, out_dir / "agent.log")}
    failures = setup.costs.provider_failures(job)
    if failures:  # the agent met a provider failure: not a measurement of the agent
        return record("error_infra", f"{PROVIDER_FAILED}: {failures[-1]}"[:2000], agent_s=run.duration,
                      **agent_log, **paths)
    leak = contamination(task, run)
    if leak:
        return record("contaminated", leak, agent_s=run.duration, **agent_log, **paths)
    if run.timed_out and not run.patch.strip():
        return record("timeout", f"the agent ran past {setup.limits.solve_timeout_s:g} s without a patch",
                      agent_s=run.duration, **agent_log, **paths)
    limits = setup.limits
    graded = grade(run.patch, task, setup.suite, setup.backend, timeout=limits.test_timeout_s,
                   limits=limits.sandbox_limits, test_machinery=setup.test_machinery)
    (out_dir / "test.log").write_text(setup.redact(graded.log), encoding="utf-8")
    report = setup.redact(json.dumps(graded.to_dict(), default=str, indent=1))
    (out_dir / "report.json").write_text(report, encoding="utf-8")
    detail = graded.detail
    if run.exit_code != 0 and not run.timed_out:
        detail = (detail + "; " if detail else "") + f"agent exited {run.exit_code}"
    return record(graded.outcome.value, detail, agent_s=run.duration, grade_s=graded.duration,
                  log_path=_rel(setup.root, out_dir / "test.log"), flags=graded.flags, **paths)


def contamination(task: Task, run: AgentRun) -> str | None:
    """Why `run` shows that the task's hidden test material reached the agent, or None."""
    canary = canary_for(task)
    for name, text in (("trajectory", run.outputs.get("trajectory.jsonl")), ("patch", run.outputs.get("patch.diff")),
                       ("result", run.outputs.get("result.json")), ("output", run.stdout + run.stderr)):
        if found_in(canary, text):
            return f"the task's hidden-test canary is in the agent's {name}: hidden tests reached the agent (not scored)"
    return None


def _evolve(setup: EvalSetup, agent_dir: Path, task: Task, out_dir: Path, tags: Mapping[str, object]) -> AttemptsOutcome:
    """Several attempts, evolved and checked; the outcome names the one to grade."""
    if setup.chat is None:
        raise ValueError("an evaluation with several attempts needs EvalSetup.chat (the gateway's model calls)")
    chat, job, limits, policy = setup.chat, str(tags["job"]), setup.limits, setup.attempts
    checker = SandboxChecker(
        setup.backend, setup.suite, task, _environment(setup, task),
        CheckLimits(test_timeout_s=limits.test_timeout_s, sandbox_limits=limits.sandbox_limits, labels=limits.labels),
        run_tests=policy.run_tests,
    )
    evolution = AttemptEvolution(
        policy, task.problem_statement,
        # each attempt redacted before anything of it is kept or summarised
        solve=lambda guidance, index: _solve(setup, agent_dir, task, {**tags, "attempt": f"{job}.{index}"},
                                             guidance).redacted(setup.redact),
        checker=checker,
        chat_for=lambda purpose, index: chat({**tags, "purpose": purpose, **({"attempt": f"{job}.{index}"} if index else {})},
                                             policy.reply_tokens, REPLY_SCHEMAS.get(purpose)),
        spent=lambda: setup.costs.job(job),
        out_dir=out_dir,
        broken=lambda: bool(setup.costs.provider_failures(job)),
    )
    return evolution.run()


def _environment(setup: EvalSetup, task: Task) -> Environment:
    """The task's image (pulled or built once when missing) and its activated environment."""
    environment = setup.suite.ensure_environment(task, setup.backend)
    if setup.on_environment is not None:
        setup.on_environment(task, environment)
    return environment


def _solve(
    setup: EvalSetup, agent_dir: Path, task: Task, tags: Mapping[str, object], guidance: str | None = None
) -> AgentRun:
    access = setup.access(tags)
    limits = setup.limits
    environment = _environment(setup, task)
    spec = SandboxSpec(
        image=environment.image,
        mounts=tuple(access.mounts),
        env={**access.env, **environment.env},  # the task's environment (e.g. conda's PATH) wins
        limits=limits.sandbox_limits,
        labels={**dict(limits.labels), "hgm.purpose": "solve", "hgm.task": task.instance_id},
    )
    with setup.backend.open(spec) as session:
        testbed = setup.suite.prepare(session, task, TESTBED)
        return run_agent(session, environment.python or setup.backend.python, agent_dir, "solve",
                         task.problem_statement, testbed, AgentLimits(limits.max_steps, limits.solve_timeout_s),
                         guidance=guidance)


def _rel(root: Path | None, path: Path) -> str:
    """`path` relative to `root` when it lies inside it (portable archives), else absolute."""
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)
