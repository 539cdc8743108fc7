"""Run one bash command: own process group, hard timeout, capped output, persistent cwd.

Each command runs as a fresh `bash` process in its own session. When it ends (or its
time is up) the whole process group is killed, so background children do not outlive the
step. Output (stdout and stderr merged) is read incrementally and only its head and tail
are kept, so a flood never fills memory. The working directory carries over between
commands: an EXIT trap writes `pwd` to a state file that the next command starts from.
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_SECRET_KEY", "_PASSWORD")
QUIET_TOOLS = {"PAGER": "cat", "GIT_PAGER": "cat", "TERM": "dumb", "PIP_PROGRESS_BAR": "off"}
DRAIN_SECONDS = 1.0  # how long to keep reading after the command's group was killed


def command_env(environ: dict[str, str]) -> dict[str, str]:
    """Return `environ` without secrets (defence in depth) and with pagers switched off."""
    env = {k: v for k, v in environ.items() if not k.upper().endswith(SECRET_SUFFIXES)}
    env.update(QUIET_TOOLS)
    return env


@dataclass(frozen=True)
class Observation:
    """What one command did."""

    exit_code: int | None  # None when it was killed for running too long
    output: str
    timed_out: bool
    omitted_bytes: int
    duration: float
    cwd: str


class OutputCap:
    """Keep the first and last bytes of a stream, up to `limit` in all."""

    def __init__(self, limit: int) -> None:
        self.head_limit = max(limit, 0) // 2
        self.tail_limit = max(limit, 0) - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > 2 * self.tail_limit + 65536:
            del self.tail[: len(self.tail) - self.tail_limit]

    def text(self) -> tuple[str, int]:
        """Return the kept text (with a marker where bytes were dropped) and the dropped count."""
        tail = bytes(self.tail[len(self.tail) - self.tail_limit :]) if self.tail_limit else b""
        omitted = self.total - len(self.head) - len(tail)
        head = self.head.decode("utf-8", errors="replace")
        if omitted <= 0:
            return head + tail.decode("utf-8", errors="replace"), 0
        marker = f"\n[... {omitted} bytes of output omitted ...]\n"
        return head + marker + tail.decode("utf-8", errors="replace"), omitted


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Shell:
    """Runs commands one after another in a directory that persists between them."""

    def __init__(self, cwd: str, timeout: float, max_output: int, env: dict[str, str]) -> None:
        self.home = os.path.abspath(cwd)
        self.cwd = self.home
        self.timeout = timeout
        self.max_output = max_output
        self.env = env
        self.state_dir = tempfile.mkdtemp(prefix="agent-shell-")
        self.bash = shutil.which("bash") or "/bin/sh"

    def close(self) -> None:
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def run(self, command: str) -> Observation:
        """Run `command`; never raises for anything the command does."""
        if not os.path.isdir(self.cwd):
            self.cwd = self.home
        script = os.path.join(self.state_dir, "command.sh")
        cwd_file = os.path.join(self.state_dir, "cwd")
        started = time.monotonic()
        cap = OutputCap(self.max_output)
        try:
            os.makedirs(self.state_dir, exist_ok=True)  # a command may have deleted it
            with open(script, "w", encoding="utf-8", errors="replace") as f:
                f.write(f"trap 'pwd > {shlex.quote(cwd_file)}' EXIT\n{command}\n")
            if os.path.exists(cwd_file):
                os.unlink(cwd_file)
            proc = subprocess.Popen(
                [self.bash, script], cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError as err:
            return Observation(None, f"could not start the command: {err}", False, 0, 0.0, self.cwd)
        timed_out = self._pump(proc, cap, started + self.timeout)
        exit_code = None if timed_out else proc.returncode
        self.cwd = self._read_cwd(cwd_file)
        output, omitted = cap.text()
        return Observation(exit_code, output, timed_out, omitted, time.monotonic() - started, self.cwd)

    def _pump(self, proc: subprocess.Popen, cap: OutputCap, deadline: float) -> bool:
        """Copy output into `cap` until EOF; kill the group when done or late. True if late."""
        fd = proc.stdout.fileno()
        timed_out = killed = False
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    if killed:
                        break  # an escaped child still holds the pipe
                    timed_out = killed = True
                    kill_group(proc.pid)
                    deadline = now + DRAIN_SECONDS
                    continue
                ready, _, _ = select.select([fd], [], [], min(deadline - now, 0.1))
                if ready:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    cap.add(chunk)
                elif not killed and proc.poll() is not None:
                    killed = True  # the command ended; its background children go too
                    kill_group(proc.pid)
                    deadline = min(deadline, now + DRAIN_SECONDS)
        finally:
            kill_group(proc.pid)
            proc.stdout.close()
            proc.wait()
        return timed_out

    def _read_cwd(self, cwd_file: str) -> str:
        try:
            with open(cwd_file, encoding="utf-8", errors="surrogateescape") as f:
                path = f.read().strip()
        except OSError:
            return self.cwd
        return path if os.path.isdir(path) else self.cwd
