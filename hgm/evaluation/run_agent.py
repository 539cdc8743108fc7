"""Run an agent version inside an open sandbox session: `python -m agent solve|improve`.

The caller opens the session (its spec carries the model access: environment and mounts)
and puts the repository the agent works on; `run_agent` puts the agent's source, the
problem text and the optional guidance, runs the agent under a hard timeout and brings
back its three output files. The command line is the agent contract (docs/agent.md).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Mapping

from sandbox.api import Session

AGENT_DIR = "/work/agent_code"
PROBLEM = "/work/problem.md"
GUIDANCE = "/work/guidance.md"
OUT = "/work/agent_out"
OUTPUT_FILES = ("patch.diff", "trajectory.jsonl", "result.json")
Mode = Literal["solve", "improve"]


@dataclass(frozen=True)
class AgentLimits:
    """How far one agent attempt may go."""

    max_steps: int = 6
    timeout_s: float = 300.0


@dataclass
class AgentRun:
    """What one agent process did and left behind."""

    command: str
    exit_code: int
    timed_out: bool
    duration: float
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, bytes] = field(default_factory=dict)

    @property
    def patch(self) -> str:
        """The agent's diff (undecodable bytes kept, so the diff applies as written)."""
        return self.outputs.get("patch.diff", b"").decode("utf-8", errors="surrogateescape")

    def result(self) -> dict:
        """The agent's result.json ({} when missing or broken), with how the process ended."""
        try:
            data = json.loads(self.outputs.get("result.json") or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = {}
        data = data if isinstance(data, dict) else {}
        if self.timed_out:
            data.setdefault("exit_reason", "timeout")
        elif self.exit_code != 0:
            data.setdefault("exit_reason", f"crashed (exit {self.exit_code})")
            data.setdefault("stderr_tail", self.stderr[-1500:])
        return data

    @property
    def tokens(self) -> int:
        """Tokens the agent says it used (the gateway's count is authoritative)."""
        tokens = self.result().get("tokens")
        return int(tokens) if isinstance(tokens, (int, float)) else 0

    def redacted(self, redact: Callable[[str], str] | None) -> "AgentRun":
        """A copy with secrets redacted from every output and the process log (see
        `hgm.gateway.redact.Redactor`); do this before anything is graded, saved or stored."""
        if redact is None:
            return self
        data = getattr(redact, "data", None) or (
            lambda raw: redact(raw.decode("utf-8", errors="surrogateescape")).encode("utf-8", errors="surrogateescape"))
        return dataclasses.replace(
            self, stdout=redact(self.stdout), stderr=redact(self.stderr),
            outputs={name: data(content) for name, content in self.outputs.items()},
        )

    def save(self, dest: Path, log_name: str = "agent.log") -> None:
        """Write the output files and a log of the process into `dest`."""
        dest.mkdir(parents=True, exist_ok=True)
        for name in OUTPUT_FILES:
            (dest / name).write_bytes(self.outputs.get(name, b""))
        (dest / log_name).write_text(
            f"$ {self.command}\nexit={self.exit_code} timed_out={self.timed_out} duration={self.duration:.1f}s\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}\n",
            encoding="utf-8",
        )


def run_agent(
    session: Session,
    python: str,
    agent_dir: Path,
    mode: Mode,
    problem: str,
    repo: str,
    limits: AgentLimits,
    *,
    env: Mapping[str, str] | None = None,
    guidance: str | None = None,
) -> AgentRun:
    """Run the agent in `agent_dir` (a folder holding `agent/`) on sandbox repo `repo`.

    Model access comes with the session (its spec's env and mounts); `env` adds to it.

    Raises the backend's errors (SandboxError, OSError) on infrastructure failure; an
    agent that crashes or times out is a normal `AgentRun`.
    """
    r = session.resolve
    session.put(AGENT_DIR, agent_dir)
    session.put(PROBLEM, problem.encode("utf-8"))
    args = [python, "-m", "agent", mode, "--problem", r(PROBLEM), "--repo", r(repo), "--out", r(OUT),
            "--max-steps", str(limits.max_steps)]
    if guidance:
        session.put(GUIDANCE, guidance.encode("utf-8"))
        args += ["--guidance", r(GUIDANCE)]
    command = f"cd {shlex.quote(r(AGENT_DIR))} && {shlex.join(args)}"
    done = session.exec(command, timeout=limits.timeout_s, env={"PYTHONDONTWRITEBYTECODE": "1", **dict(env or {})})
    outputs = {name: _read(session, f"{OUT}/{name}") for name in OUTPUT_FILES}
    return AgentRun(command, done.exit_code, done.timed_out, done.duration, done.stdout, done.stderr, outputs)


def _read(session: Session, path: str) -> bytes:
    try:
        return session.get(path)
    except Exception:  # noqa: BLE001 - a missing file is an empty output, whatever the backend raises
        return b""
