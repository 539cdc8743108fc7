"""Self-improvement: the parent's agent rewrites its own source in a sandbox; then admission.

1. Sandbox A gets the parent's source twice: the code that runs (`run_agent`'s agent
   directory) and a git work tree the agent edits (`SRC`). `python -m agent improve` runs
   there with the model access of the call's tags and leaves its diff and trajectory
   (secrets redacted before anything is kept).
2. The diff must be a non-empty git diff.
3. The diff is applied on the host to a fresh copy of the parent's source: the child.
4. The admission gate (`hgm.evolve.gate.vet`) judges the child against the parent: static
   checks, then the tests in sandbox B, fresh and without network or model access.

Every artifact is kept under `work_dir` (one directory per expansion in the run).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sandbox.api import Backend, Limits, SandboxSpec

from hgm.evaluation.run_agent import AgentLimits, AgentRun, run_agent
from hgm.evolve.acceptance import diff_problem
from hgm.evolve.context import clip
from hgm.evolve.gate import GateSettings, TestSandbox, Verdict, vet
from hgm.gateway.access import ModelAccess

SRC = "/work/src"
_GIT_IDENTITY = ["-c", "user.name=hgm", "-c", "user.email=hgm@localhost", "-c", "commit.gpgsign=false"]


@dataclass(frozen=True)
class ImproveLimits:
    improve_timeout_s: float = 600.0
    test_timeout_s: float = 300.0
    max_steps: int = 8
    image: str | None = None  # None: the spec's default (hgm-base)
    python: str = "python3"  # the interpreter inside the sandbox
    sandbox_limits: Limits = field(default_factory=Limits)
    labels: tuple[tuple[str, str], ...] = ()  # extra sandbox labels, e.g. (("hgm.run", name),)

    def test_sandbox(self, backend: Backend) -> TestSandbox:
        """Where the gate runs a child's tests: a fresh sandbox without model access."""
        return TestSandbox(backend, self.spec("vet"), self.python, self.test_timeout_s)

    def spec(self, purpose: str, access: ModelAccess | None = None) -> SandboxSpec:
        """A sandbox for `purpose`, with model access only when given."""
        return SandboxSpec(
            mounts=tuple(access.mounts) if access else (),
            env=dict(access.env) if access else {},
            limits=self.sandbox_limits,
            labels={**dict(self.labels), "hgm.purpose": purpose},
            **({"image": self.image} if self.image else {}),
        )


@dataclass
class ImproveResult:
    """What came out of one self-improvement attempt."""

    accepted: bool
    reason: str = ""  # why not accepted ('' when accepted)
    child_dir: Path | None = None
    diff: str = ""
    agent_result: dict = field(default_factory=dict)
    tokens: int = 0
    improve_s: float = 0.0
    test_s: float = 0.0
    test_output: str = ""
    verdict: Verdict | None = None  # the gate's decision (None: no child to judge)


class ImproveError(RuntimeError):
    """Host-side preparation failed (git missing, disk full, ...)."""


def _git(cwd: Path, *args: str, input_bytes: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *_GIT_IDENTITY, *args], cwd=cwd, input=input_bytes, capture_output=True, timeout=120
    )


def prepare_work_tree(parent_dir: Path, dest: Path) -> None:
    """Copy the parent's source to `dest` and make it a git work tree with one commit."""
    shutil.copytree(parent_dir, dest, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pyc"))
    for args in (("init", "-q"), ("add", "-A"), ("commit", "-q", "--no-verify", "-m", "parent")):
        done = _git(dest, *args)
        if done.returncode != 0:
            raise ImproveError(f"git {args[0]} failed in {dest}: {done.stderr.decode(errors='replace').strip()}")


def apply_diff(work_tree: Path, diff: str) -> str | None:
    """Apply `diff` to a git work tree; return None on success, else why it failed."""
    data = diff.encode("utf-8", errors="surrogateescape")
    done = _git(work_tree, "apply", "--binary", "--whitespace=nowarn", "-", input_bytes=data)
    if done.returncode != 0:
        return "the diff does not apply to the parent's source: " + clip(done.stderr.decode(errors="replace").strip(), 300)
    return None


def run_improve_agent(
    backend: Backend, parent_dir: Path, problem: str, access: ModelAccess, limits: ImproveLimits, work_dir: Path,
    *,
    redact: Callable[[str], str] | None = None,
    start_dir: Path | None = None,
) -> AgentRun:
    """Run the parent's `agent improve` on a work tree of its own source, in a sandbox.

    With `start_dir` (e.g. a merge of two versions), the work tree's files are those of
    `start_dir`, uncommitted on top of the parent's commit: the agent's diff then goes from
    the parent to its final tree. Artifacts land in `work_dir` (secrets redacted): problem.md, patch.diff,
    trajectory.jsonl, result.json, improve.log. Raises SandboxError on infrastructure failure.
    """
    src = work_dir / "src"
    prepare_work_tree(parent_dir, src)
    (work_dir / "problem.md").write_text(redact(problem) if redact else problem, encoding="utf-8")
    tree = src
    if start_dir is not None:
        tree = work_dir / "start"
        shutil.copytree(src / ".git", tree / ".git")
        shutil.copytree(start_dir, tree, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pyc"),
                        dirs_exist_ok=True)
    with backend.open(limits.spec("improve", access)) as session:
        session.put(SRC, tree)
        run = run_agent(session, limits.python, parent_dir, "improve", problem, SRC,
                        AgentLimits(limits.max_steps, limits.improve_timeout_s))
    run = run.redacted(redact)
    run.save(work_dir, "improve.log")
    return run


def self_improve(
    backend: Backend,
    parent_dir: Path,
    problem: str,
    access: ModelAccess,
    limits: ImproveLimits,
    work_dir: Path,
    *,
    gate: GateSettings | None = None,
    redact: Callable[[str], str] | None = None,
    start_dir: Path | None = None,
) -> ImproveResult:
    """The whole attempt: run the improve agent, apply its diff, put the child through the gate.

    `start_dir`: the files the agent starts from when they are not the parent's own (a
    recombination's merge); the diff is still taken from the parent, so acceptance judges
    the whole change. Raises SandboxError / ImproveError on infrastructure failure (the
    caller records it).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    run = run_improve_agent(backend, parent_dir, problem, access, limits, work_dir, redact=redact, start_dir=start_dir)
    diff, agent_result = run.patch, run.result()
    base = ImproveResult(False, diff=diff, agent_result=agent_result, tokens=run.tokens, improve_s=run.duration)
    problem_text = diff_problem(diff)
    if problem_text:
        if not diff.strip() and agent_result.get("exit_reason"):
            problem_text += f" (agent exit: {agent_result['exit_reason']})"
        base.reason = problem_text
        return base
    child = work_dir / "child"
    # a copy of the parent's work tree: the sandbox's edits never reached the host copy
    shutil.copytree(work_dir / "src", child, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    apply_error = apply_diff(child, diff)
    if apply_error:
        base.reason = apply_error
        return base
    shutil.rmtree(child / ".git", ignore_errors=True)
    verdict = vet(parent_dir, child, gate, limits.test_sandbox(backend))
    output = "".join(f"--- {name} ---\n{log}\n" for name, log in verdict.test_logs.items())
    (work_dir / "agent_tests.log").write_text(redact(output) if redact else output, encoding="utf-8")
    (work_dir / "vet.json").write_text(json.dumps(verdict.to_dict(), indent=1), encoding="utf-8")
    base.test_s, base.test_output, base.verdict = verdict.test_s, output, verdict
    if not verdict.accepted:
        base.reason = f"rejected by the gate: {clip(verdict.reason, 1200)}"
        return base
    base.accepted, base.child_dir = True, child
    return base
