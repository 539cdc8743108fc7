"""Run one bash command: own process group, hard timeout, capped output, persistent cwd."""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_SECRET_KEY", "_PASSWORD")
QUIET_TOOLS = {"PAGER": "cat", "GIT_PAGER": "cat", "TERM": "dumb", "PIP_PROGRESS_BAR": "off"}
DRAIN_SECONDS = 1.0  # how long to keep reading after the command ended (its children may still write)


def command_env(environ: dict[str, str]) -> dict[str, str]:
    """Return `environ` without secrets (defence in depth) and with pagers switched off."""
    env = {k: v for k, v in environ.items() if not k.upper().endswith(SECRET_SUFFIXES)}
    return {**env, **QUIET_TOOLS}


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class Shell:
    """Runs commands one after another; `cd` carries over (an EXIT trap records `pwd`)."""

    def __init__(self, cwd: str, timeout: float, max_output: int, env: dict[str, str]) -> None:
        self.home = self.cwd = os.path.abspath(cwd)
        self.timeout = timeout
        self.max_output = max_output
        self.env = env
        self.state_dir = tempfile.mkdtemp(prefix="agent-shell-")

    def close(self) -> None:
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def run(self, command: str) -> dict:
        """Run `command` in its own process group; never raises for anything the command does.

        Returns exit_code (None if it ran too long), output, timed_out, omitted_bytes, duration, cwd.
        """
        if not os.path.isdir(self.cwd):
            self.cwd = self.home
        script = os.path.join(self.state_dir, "command.sh")
        cwd_file = os.path.join(self.state_dir, "cwd")
        started = time.monotonic()
        try:
            os.makedirs(self.state_dir, exist_ok=True)  # a command may have deleted it
            with open(script, "w", encoding="utf-8", errors="replace") as f:
                f.write(f"trap 'pwd > {shlex.quote(cwd_file)}' EXIT\n{command}\n")
            if os.path.exists(cwd_file):
                os.unlink(cwd_file)
            proc = subprocess.Popen([shutil.which("bash") or "/bin/sh", script], cwd=self.cwd, env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except OSError as err:
            return {"exit_code": None, "output": f"could not start the command: {err}", "timed_out": False,
                    "omitted_bytes": 0, "duration": 0.0, "cwd": self.cwd}
        timed_out, output, omitted = self._read(proc, started + self.timeout)
        try:
            with open(cwd_file, encoding="utf-8", errors="surrogateescape") as f:
                cwd = f.read().strip()
            self.cwd = cwd if os.path.isdir(cwd) else self.cwd
        except OSError:
            pass  # killed before the trap ran: the next command starts where this one did
        return {"exit_code": None if timed_out else proc.returncode, "output": output, "timed_out": timed_out,
                "omitted_bytes": omitted, "duration": round(time.monotonic() - started, 3), "cwd": self.cwd}

    def _read(self, proc: subprocess.Popen, deadline: float) -> tuple[bool, str, int]:
        """Read output until EOF or `deadline`, then kill the group; return (too long?, head + tail, bytes cut)."""
        head_limit, tail_limit = self.max_output // 2, self.max_output - self.max_output // 2
        head, tail, total = b"", b"", 0
        fd = proc.stdout.fileno()
        try:
            while time.monotonic() < deadline:
                if select.select([fd], [], [], 0.1)[0]:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    total += len(chunk)
                    room = max(head_limit - len(head), 0)
                    head += chunk[:room]
                    tail = (tail + chunk[room:])[-tail_limit:]
                elif proc.poll() is not None:  # it ended: its background children go too
                    kill_group(proc.pid)
                    deadline = min(deadline, time.monotonic() + DRAIN_SECONDS)
            timed_out = time.monotonic() >= deadline and proc.poll() is None
        finally:
            kill_group(proc.pid)
            proc.stdout.close()
            proc.wait()
        omitted = total - len(head) - len(tail)
        marker = f"\n[... {omitted} bytes of output omitted ...]\n".encode() if omitted else b""
        return timed_out, (head + marker + tail).decode("utf-8", errors="replace"), omitted
