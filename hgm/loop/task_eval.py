"""Evaluate one agent version on one task: `agent solve` in a sandbox, then grading.

1. A sandbox from the task's image gets the pristine repository (`suite.prepare`), the
   agent's source and the problem text; `python -m agent solve` runs with model access
   only through the gateway (env + socket mount given by the caller).
2. Its `patch.diff` is graded by `evaluators.grading.grade` in a FRESH sandbox.
3. The outcome is one of the archive's statuses; an agent that runs out of time without
   leaving a patch is a `timeout` (a measurement: the agent's own doing); sandbox or
   environment failures are `error_infra` (never scored).

Artifacts (patch, trajectory, agent result and log, test log, grading report) are kept
in `out_dir`. Times are split into sandbox set-up, agent, and grading.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from evaluators.grading import grade, python_for
from evaluators.suite import TESTBED, Suite
from evaluators.task import Task
from sandbox.api import Backend, Limits, SandboxError, SandboxSpec

from hgm.evolve.improve import SandboxLLM

AGENT_DIR, PROBLEM, OUT = "/work/agent_code", "/work/problem.md", "/work/agent_out"


@dataclass(frozen=True)
class SolveLimits:
    max_steps: int = 6
    solve_timeout_s: float = 300.0
    test_timeout_s: float = 300.0
    sandbox_limits: Limits = field(default_factory=Limits)
    labels: tuple[tuple[str, str], ...] = ()  # extra sandbox labels, e.g. (("hgm.run", name),)


@dataclass
class TaskRun:
    """The outcome of one evaluation, with its artifacts and timings."""

    status: str
    detail: str = ""
    tokens: int = 0
    sandbox_s: float = 0.0  # opening, filling and removing the agent's sandbox
    agent_s: float = 0.0  # the agent process itself
    grade_s: float = 0.0  # grading in a fresh sandbox
    trajectory_path: Path | None = None
    log_path: Path | None = None
    report: dict = field(default_factory=dict)


def _outputs(session, names: tuple[str, ...]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name in names:
        try:
            out[name] = session.get(f"{OUT}/{name}")
        except Exception:  # noqa: BLE001 - a missing file is an empty output, whatever the backend raises
            out[name] = b""
    return out


def run_task(
    backend: Backend,
    suite: Suite,
    task: Task,
    agent_dir: Path,
    llm: SandboxLLM,
    out_dir: Path,
    limits: SolveLimits,
) -> TaskRun:
    """Run the agent in `agent_dir` (a folder holding `agent/`) on `task`, then grade it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    agent_s = 0.0
    try:
        # the task's image (pulled or built when missing) and its activated environment
        environment = suite.ensure_environment(task, backend)
        python = environment.python or python_for(backend)
        spec = SandboxSpec(
            image=environment.image,
            mounts=tuple(llm.mounts),
            limits=limits.sandbox_limits,
            labels={**dict(limits.labels), "hgm.purpose": "solve", "hgm.task": task.instance_id},
        )
        with backend.open(spec) as session:
            testbed = suite.prepare(session, task, TESTBED)
            session.put(AGENT_DIR, agent_dir)
            session.put(PROBLEM, task.problem_statement.encode("utf-8"))
            r = session.resolve
            cmd = (
                f"cd {shlex.quote(r(AGENT_DIR))} && {python} -m agent solve --problem {shlex.quote(r(PROBLEM))} "
                f"--repo {shlex.quote(r(testbed))} --out {shlex.quote(r(OUT))} --max-steps {limits.max_steps}"
            )
            env = {"PYTHONDONTWRITEBYTECODE": "1", **dict(llm.env), **environment.env}
            run = session.exec(cmd, timeout=limits.solve_timeout_s, env=env)
            agent_s = run.duration
            outputs = _outputs(session, ("patch.diff", "trajectory.jsonl", "result.json"))
    except (SandboxError, OSError) as exc:
        return TaskRun("error_infra", detail=f"agent sandbox failed: {exc.__class__.__name__}: {exc}",
                       sandbox_s=time.monotonic() - t0 - agent_s, agent_s=agent_s)
    except Exception as exc:  # noqa: BLE001 - e.g. docker SDK errors or a suite that cannot prepare
        return TaskRun("error_infra", detail=f"agent sandbox failed: {exc.__class__.__name__}: {exc}",
                       sandbox_s=time.monotonic() - t0 - agent_s, agent_s=agent_s)
    sandbox_s = time.monotonic() - t0 - agent_s
    for name, data in outputs.items():
        (out_dir / name).write_bytes(data)
    (out_dir / "agent.log").write_text(
        f"$ {cmd}\nexit={run.exit_code} timed_out={run.timed_out} duration={run.duration:.1f}s\n"
        f"--- stdout ---\n{run.stdout}\n--- stderr ---\n{run.stderr}\n",
        encoding="utf-8",
    )
    try:
        result = json.loads(outputs["result.json"] or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        result = {}
    tokens = result.get("tokens") if isinstance(result, dict) else 0
    tokens = int(tokens) if isinstance(tokens, (int, float)) else 0
    patch = outputs["patch.diff"].decode("utf-8", errors="replace")
    trajectory = out_dir / "trajectory.jsonl"
    if run.timed_out and not patch.strip():
        return TaskRun("timeout", detail=f"the agent ran past {limits.solve_timeout_s:g} s without a patch",
                       tokens=tokens, sandbox_s=sandbox_s, agent_s=agent_s, trajectory_path=trajectory,
                       log_path=out_dir / "agent.log")
    graded = grade(patch, task, suite, backend, timeout=limits.test_timeout_s, limits=limits.sandbox_limits)
    (out_dir / "test.log").write_text(graded.log, encoding="utf-8")
    (out_dir / "report.json").write_text(json.dumps(graded.to_dict(), default=str, indent=1), encoding="utf-8")
    detail = graded.detail
    if run.exit_code != 0 and not run.timed_out:
        detail = (detail + "; " if detail else "") + f"agent exited {run.exit_code}"
    return TaskRun(
        graded.outcome.value,
        detail=detail,
        tokens=tokens,
        sandbox_s=sandbox_s,
        agent_s=agent_s,
        grade_s=graded.duration,
        trajectory_path=trajectory,
        log_path=out_dir / "test.log",
        report=graded.report,
    )
