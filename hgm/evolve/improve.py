"""Self-improvement: the parent's agent rewrites its own source in a sandbox; then acceptance.

1. Sandbox A holds two copies of the parent's source: `/work/runner` (the code that runs)
   and `/work/src` (a git work tree the agent edits). `python -m agent improve` runs
   there, with model access only through the gateway (env + socket mount given by the
   caller), and leaves `patch.diff`, `trajectory.jsonl` and `result.json`.
2. The diff must be non-empty and leave the contract tests untouched.
3. The diff is applied on the host to a fresh copy of the parent's source.
4. Sandbox B, fresh, runs the child's own test suite; it must pass.

Every artifact is kept under `work_dir` (one directory per expansion in the run).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from sandbox.api import Backend, Limits, Mount, SandboxError, SandboxSpec

from hgm.evolve.acceptance import diff_problem
from hgm.evolve.context import clip, read_text

RUNNER, SRC, OUT, PROBLEM, CHILD = "/work/runner", "/work/src", "/work/out", "/work/problem.md", "/work/agent"
TEST_COMMAND = "python3 -m unittest discover -s agent/tests -t ."
# The contract modules also run by name, so a child cannot hide them from discovery
# (e.g. with a load_tests hook in agent/tests/__init__.py).
CONTRACT_COMMAND = (
    'for f in agent/tests/test_contract*.py; do [ ! -e "$f" ] || '
    'python3 -m unittest "agent.tests.$(basename "$f" .py)" || exit 1; done'
)
_GIT_IDENTITY = ["-c", "user.name=hgm", "-c", "user.email=hgm@localhost", "-c", "commit.gpgsign=false"]


@dataclass(frozen=True)
class SandboxLLM:
    """How an agent in a sandbox reaches the gateway: environment and mounts."""

    env: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()


@dataclass(frozen=True)
class ImproveLimits:
    improve_timeout_s: float = 600.0
    test_timeout_s: float = 300.0
    max_steps: int = 8
    image: str | None = None  # None: the spec's default (hgm-base)
    sandbox_limits: Limits = field(default_factory=Limits)
    labels: tuple[tuple[str, str], ...] = ()  # extra sandbox labels, e.g. (("hgm.run", name),)


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


def _json_or_empty(text: str) -> dict:
    import json

    try:
        data = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_improve_agent(
    backend: Backend, parent_dir: Path, problem: str, llm: SandboxLLM, limits: ImproveLimits, work_dir: Path
) -> tuple[str, dict, float]:
    """Run the parent's `agent improve` in a sandbox; return (diff, result.json, seconds).

    Artifacts land in `work_dir`: problem.md, patch.diff, trajectory.jsonl, result.json,
    improve.log. Raises SandboxError on infrastructure failure.
    """
    src = work_dir / "src"
    prepare_work_tree(parent_dir, src)
    (work_dir / "problem.md").write_text(problem, encoding="utf-8")
    spec = SandboxSpec(
        mounts=tuple(llm.mounts),
        limits=limits.sandbox_limits,
        labels={**dict(limits.labels), "hgm.purpose": "improve"},
        **({"image": limits.image} if limits.image else {}),
    )
    started = time.monotonic()
    with backend.open(spec) as session:
        session.put(RUNNER, parent_dir)
        session.put(SRC, src)
        session.put(PROBLEM, problem.encode("utf-8"))
        r = session.resolve
        cmd = (
            f"cd {r(RUNNER)} && python3 -m agent improve --problem {r(PROBLEM)} --repo {r(SRC)} "
            f"--out {r(OUT)} --max-steps {limits.max_steps}"
        )
        env = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": r(RUNNER), **dict(llm.env)}
        result = session.exec(cmd, timeout=limits.improve_timeout_s, env=env)
        (work_dir / "improve.log").write_text(
            f"$ {cmd}\nexit={result.exit_code} timed_out={result.timed_out} duration={result.duration:.1f}s\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}\n",
            encoding="utf-8",
        )
        outputs: dict[str, bytes] = {}
        for name in ("patch.diff", "trajectory.jsonl", "result.json"):
            try:
                outputs[name] = session.get(f"{OUT}/{name}")
            except (SandboxError, OSError, FileNotFoundError, KeyError):
                outputs[name] = b""
    elapsed = time.monotonic() - started
    for name, data in outputs.items():
        (work_dir / name).write_bytes(data)
    agent_result = _json_or_empty(outputs["result.json"].decode("utf-8", errors="replace"))
    if result.timed_out:
        agent_result.setdefault("exit_reason", "timeout")
    elif result.exit_code != 0:
        agent_result.setdefault("exit_reason", f"crashed (exit {result.exit_code})")
        agent_result.setdefault("stderr_tail", result.stderr[-1500:])
    diff = outputs["patch.diff"].decode("utf-8", errors="surrogateescape")
    return diff, agent_result, elapsed


def run_agent_tests(backend: Backend, child_dir: Path, limits: ImproveLimits) -> tuple[bool, str, float]:
    """Run the child's own unittest suite in a fresh sandbox (no model access)."""
    spec = SandboxSpec(
        limits=limits.sandbox_limits,
        labels={**dict(limits.labels), "hgm.purpose": "agent-tests"},
        **({"image": limits.image} if limits.image else {}),
    )
    with backend.open(spec) as session:
        session.put(CHILD, child_dir)
        result = session.exec(
            f"cd {session.resolve(CHILD)} && {TEST_COMMAND} && {CONTRACT_COMMAND}",
            timeout=limits.test_timeout_s,
            env={"PYTHONDONTWRITEBYTECODE": "1"},
        )
    output = f"exit={result.exit_code} timed_out={result.timed_out}\n{result.stdout}\n{result.stderr}"
    return result.ok, output, result.duration


def self_improve(
    backend: Backend,
    parent_dir: Path,
    problem: str,
    llm: SandboxLLM,
    limits: ImproveLimits,
    work_dir: Path,
) -> ImproveResult:
    """The whole attempt: run the improve agent, check the diff, test the child.

    Raises SandboxError / ImproveError on infrastructure failure (the caller records it).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    diff, agent_result, improve_s = run_improve_agent(backend, parent_dir, problem, llm, limits, work_dir)
    tokens = int(agent_result.get("tokens") or 0) if isinstance(agent_result.get("tokens"), (int, float)) else 0
    base = ImproveResult(False, diff=diff, agent_result=agent_result, tokens=tokens, improve_s=improve_s)
    problem_text = diff_problem(diff)
    if problem_text:
        reason = problem_text
        if not diff.strip() and agent_result.get("exit_reason"):
            reason += f" (agent exit: {agent_result['exit_reason']})"
        base.reason = reason
        return base
    child = work_dir / "child"
    shutil.copytree(work_dir / "src", child, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # reset the copy to the parent commit: the sandbox's edits never reached the host copy
    apply_error = apply_diff(child, diff)
    if apply_error:
        base.reason = apply_error
        return base
    shutil.rmtree(child / ".git", ignore_errors=True)
    ok, output, test_s = run_agent_tests(backend, child, limits)
    (work_dir / "agent_tests.log").write_text(output, encoding="utf-8")
    base.test_s, base.test_output = test_s, output
    if not ok:
        tail = clip(output.strip(), 600)
        base.reason = f"the agent's own tests fail in a fresh sandbox: {tail}"
        return base
    base.accepted, base.child_dir = True, child
    return base


__all__ = [
    "ImproveError",
    "ImproveLimits",
    "ImproveResult",
    "SandboxLLM",
    "TEST_COMMAND",
    "apply_diff",
    "prepare_work_tree",
    "read_text",
    "run_agent_tests",
    "run_improve_agent",
    "self_improve",
]
