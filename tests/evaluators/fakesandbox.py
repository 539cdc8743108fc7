"""A thin local sandbox for evaluator unit tests (stands in when `sandbox` backends are absent).

Files live under a temporary root; commands run with `sh -c` in their own process
group, killed whole at the deadline.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

from sandbox.api import ExecResult, SandboxSpec


class FakeSession:
    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self.root = Path(tempfile.mkdtemp(prefix="hgm-fake-"))
        self.closed = False
        Path(self.resolve(spec.workdir)).mkdir(parents=True, exist_ok=True)

    @property
    def workdir(self) -> str:
        return self.spec.workdir

    def resolve(self, path: str) -> str:
        return str(self.root / path.lstrip("/"))

    def put(self, path: str, data: bytes | Path) -> None:
        target = Path(self.resolve(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Path):
            if data.is_dir():
                shutil.copytree(data, target, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(data, target)
        else:
            target.write_bytes(data)

    def get(self, path: str) -> bytes:
        return Path(self.resolve(path)).read_bytes()

    def exec(self, cmd: str | Sequence[str], timeout: float = 60.0, env: Mapping[str, str] | None = None,
             workdir: str | None = None, max_output: int = 1_000_000) -> ExecResult:
        args = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        full_env = {**os.environ, **dict(self.spec.env), **dict(env or {})}
        start = time.monotonic()
        proc = subprocess.Popen(args, cwd=self.resolve(workdir or self.workdir), env=full_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        timed_out = False
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        return ExecResult(proc.returncode if not timed_out else -9, out.decode(errors="replace"),
                          err.decode(errors="replace"), time.monotonic() - start, timed_out)

    def close(self) -> None:
        if not self.closed:
            shutil.rmtree(self.root, ignore_errors=True)
            self.closed = True

    def __enter__(self) -> "FakeSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FakeBackend:
    name = "fake"
    python = sys.executable

    def where(self, image: str) -> str:
        return "on this host"

    def __init__(self) -> None:
        self.opened: list[FakeSession] = []

    def open(self, spec: SandboxSpec) -> FakeSession:
        session = FakeSession(spec)
        self.opened.append(session)
        return session
