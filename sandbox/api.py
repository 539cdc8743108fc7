"""The sandbox contract: what every backend offers and every caller may rely on.

A caller describes a sandbox with a `SandboxSpec`, opens it with `Backend.open(spec)`
(a context manager), moves files with `put`/`get`, runs commands with `exec`, and the
session is always removed on `close` (also on exceptions and Ctrl-C).

Paths given to `put`, `get` and `exec(workdir=...)` are *sandbox paths* (absolute, as a
process inside the sandbox would see them on Docker, e.g. "/work/repo"). Commands are
shell strings run by `sh -c`; a command that names a sandbox path must spell it as
`session.resolve(path)`, because the local backend keeps its files under a temporary
root instead of at "/".

`SandboxSpec.env` and `SandboxSpec.mounts` are written in sandbox terms too (e.g. env
`HGM_LLM_URL=/hgm-gateway/gw.sock` with `Mount(<host socket dir>, "/hgm-gateway")`);
each backend maps them (Docker: bind mounts; local: sandbox paths in env values become
host paths). PATH and HOME are the backend's business; callers set them only to override.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Protocol, Sequence, runtime_checkable

BASE_IMAGE = "hgm-base:latest"
DEFAULT_WORKDIR = "/work"
DEFAULT_MAX_OUTPUT = 1_000_000  # bytes kept per stream (head + tail)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Mount:
    """A host path made visible inside the sandbox at `target` (an absolute sandbox path).

    The local backend cannot enforce `read_only` on what commands do (see
    `sandbox.local_backend`); it only refuses `put` into a read-only mount.
    """

    source: str
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandbox."""

    memory_mb: int = 2048
    cpus: float = 1.0
    pids: int = 512
    file_size_mb: int = 1024
    cpu_seconds: int | None = None  # local backend only (RLIMIT_CPU of each exec)


@dataclass(frozen=True)
class SandboxSpec:
    """Everything needed to open a sandbox.

    `env` applies to every `exec` of the session (an exec's own `env` is merged over it)
    and, like `mounts`, is written in sandbox terms: values naming sandbox paths are
    mapped by the backend. Leave PATH and HOME out unless you mean to override the
    backend's defaults.
    """

    image: str = BASE_IMAGE
    mounts: tuple[Mount, ...] = ()
    limits: Limits = field(default_factory=Limits)
    labels: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str = DEFAULT_WORKDIR
    user: str | None = None  # e.g. "1000:1000"; None = the image's default user


@dataclass(frozen=True)
class ExecResult:
    """The outcome of one command."""

    exit_code: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class SandboxError(RuntimeError):
    """The sandbox itself failed (infrastructure), as opposed to a command failing."""


@runtime_checkable
class Session(Protocol):
    """One live sandbox."""

    @property
    def workdir(self) -> str: ...

    def resolve(self, path: str) -> str:
        """The path as commands inside this session must spell it."""
        ...

    def put(self, path: str, data: bytes | Path) -> None:
        """Write bytes to file `path`, or copy a host directory/file to `path`."""
        ...

    def get(self, path: str) -> bytes:
        """Read file `path` (a directory comes back as an uncompressed tar archive)."""
        ...

    def exec(
        self,
        cmd: str | Sequence[str],
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> ExecResult:
        """Run `cmd` with a hard deadline that kills its whole process tree."""
        ...

    def close(self) -> None:
        """Remove the sandbox; safe to call twice."""
        ...

    def __enter__(self) -> "Session": ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Backend(Protocol):
    """A kind of sandbox (docker, local).

    `name` is for logs and reports only: callers must not branch on it. What differs
    between backends is exposed as attributes instead.
    """

    name: str
    python: str  # the Python interpreter commands inside this backend's sandboxes run

    def where(self, image: str) -> str:
        """Where a session of `image` runs, for messages: "in image X" or "on this host"."""
        ...

    def open(self, spec: SandboxSpec) -> Session: ...


__all__ = [
    "BASE_IMAGE",
    "DEFAULT_MAX_OUTPUT",
    "DEFAULT_PATH",
    "DEFAULT_WORKDIR",
    "Backend",
    "ExecResult",
    "Limits",
    "Mount",
    "SandboxError",
    "SandboxSpec",
    "Session",
]
