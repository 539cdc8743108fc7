"""Local backend: a temporary directory per session, for hosts without a Docker engine.

Isolation is much weaker than Docker's and the backend says so once per instance:

* Files: sandbox path `/work/x` lives at `<tmp root>/work/x`; commands must spell
  paths via `session.resolve()`. Nothing stops a command from writing elsewhere on the
  host with the permissions of the hgm process (as root: anywhere).
* Mounts: there is no mount namespace, so a mount is a mapping: `resolve()` of a path at
  or under a mount's target gives the same path under its source (a symlink at the
  target under the root serves relative paths). `read_only` is honoured by `put` (it
  refuses to write into a read-only mount) but cannot be enforced on commands: they may
  write to the source with hgm's permissions.
* Processes: each command runs in its own session/process group (`start_new_session`)
  with a unique `HGM_EXEC_ID` in its environment; at the deadline the group and every
  process carrying that id are SIGKILLed; so are background processes still holding the
  output open DRAIN_GRACE seconds after the command itself ended.
* Limits: `prlimit` (util-linux) sets RLIMIT_AS (memory_mb), RLIMIT_FSIZE, RLIMIT_NPROC
  (pids) and RLIMIT_CPU (cpu_seconds) on the command before it starts; without `prlimit`
  a `preexec_fn` does the same (not thread-safe in CPython, hence the preference).
  RLIMIT_NPROC counts *all* processes of the uid and is ignored for root, so a fork bomb
  is only contained when hgm runs as an unprivileged user. RLIMIT_AS limits virtual
  memory, not resident memory. `cpus` is not enforced.
* Network: `unshare --net` (a new network namespace with only loopback, brought up
  with `ip` when available, as in Docker's "none" network) when the process may create
  one (root, or `unshare --map-root-user --net` with unprivileged user namespaces);
  probed once per backend instance. Otherwise the command has the host's network.
* Environment: never the parent's (no API keys leak): PATH, HOME, TMPDIR, LANG, then
  spec.env, then the exec's env. Values of spec.env and the exec's env are written in
  sandbox terms and mapped like paths (`map_env_value`): each `:`-separated element that
  is an absolute path at or under a mount target, or naming something that exists in the
  session (e.g. `/work`, `/tmp`, a directory that was `put`), becomes what `resolve`
  gives; anything else (host paths such as `sys.executable`) is left alone.
"""

from __future__ import annotations

import io
import json
import logging
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

from sandbox.api import DEFAULT_MAX_OUTPUT, DEFAULT_PATH, ExecResult, Mount, SandboxError, SandboxSpec
from sandbox.capture import HeadTailBuffer

log = logging.getLogger(__name__)

TIMEOUT_EXIT_CODE = 124
ROOT_PREFIX = "hgm-sbx-"
LABELS_FILE = ".hgm-labels.json"  # the spec's labels, so leftovers of a run can be found
KILL_GRACE = 3.0
DRAIN_GRACE = 0.5  # seconds background processes may keep the output open after the command ended
LOOPBACK_UP = 'ip link set lo up 2>/dev/null; exec "$@"'
# the same git identity the Docker base image configures system-wide
GITCONFIG = """[user]
\tname = hgm agent
\temail = agent@hgm.invalid
[safe]
\tdirectory = *
[init]
\tdefaultBranch = main
[advice]
\tdetachedHead = false
"""
WEAKER_ISOLATION_WARNING = (
    "hgm sandbox: using the LOCAL backend; isolation is much weaker than Docker's ({limitations}). "
    "Run hgm with a Docker engine for untrusted code."
)
AS_ROOT = "RUNNING AS ROOT: nothing outside the session directory is protected and the process limit is ignored"
NETWORK_NOT_CUT = "NETWORK NOT CUT (unshare not permitted)"


def _kill_tree(pgid: int | None, token: str) -> None:
    """SIGKILL the process group and every process whose environment carries the token."""
    if pgid is not None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    _kill_marked(f"HGM_EXEC_ID={token}".encode())


def _kill_marked(needle: bytes, rounds: int = 100) -> None:
    """SIGKILL every process whose environment holds the entry `needle`, and its group.

    Scans again until a scan finds none: a process may fork a new command (in a process
    group of its own) between one scan and its kill.
    """
    own_group = os.getpgrp()
    for _ in range(rounds):
        found = _marked(needle)
        if not found:
            return
        for pid in found:
            try:
                group = os.getpgid(pid)
                if group != own_group:
                    os.killpg(group, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)


def _marked(needle: bytes) -> list[int]:
    """Live processes whose environment holds the entry `needle` (zombies have none)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def _parts(path: str) -> list[str]:
    """The components of an absolute sandbox path, with `.` and `..` applied (never above /)."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


def _rlimit_preexec(limits: list[tuple[int, int]]):
    def apply() -> None:
        for which, value in limits:
            resource.setrlimit(which, (value, value))

    return apply


class LocalSession:
    """One temporary directory; see the module docstring."""

    def __init__(self, backend: LocalBackend, spec: SandboxSpec) -> None:
        self._backend = backend
        self.spec = spec
        # (target components, host source, mount), longest target first: nested mounts win
        self._mounts: list[tuple[list[str], Path, Mount]] = []
        for mount in spec.mounts:
            target = _parts(mount.target)
            if not mount.target.startswith("/") or not target:
                raise SandboxError(f"mount target {mount.target!r} must be an absolute path other than /")
            if not Path(mount.source).exists():
                raise SandboxError(f"mount source {mount.source} does not exist")
            self._mounts.append((target, Path(mount.source).resolve(), mount))
        self._mounts.sort(key=lambda m: -len(m[0]))
        self.root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.root), True)
        self._closed = False
        try:
            (self.root / LABELS_FILE).write_text(json.dumps(dict(spec.labels)), encoding="utf-8")
            for sub in ("tmp", "home"):
                (self.root / sub).mkdir()
            (self.root / "home" / ".gitconfig").write_text(GITCONFIG)
            Path(self.resolve(spec.workdir)).mkdir(parents=True, exist_ok=True)
            for target, source, mount in self._mounts:
                if any(len(t) < len(target) and target[: len(t)] == t for t, _, _ in self._mounts):
                    continue  # nested in another mount: reachable through resolve() only
                link = self.root.joinpath(*target)
                link.parent.mkdir(parents=True, exist_ok=True)
                if link.exists() or link.is_symlink():
                    raise SandboxError(f"mount target {mount.target} already exists")
                link.symlink_to(source)
        except BaseException:
            self.close()
            raise

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        """Delete the session's directory (idempotent)."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> LocalSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("the sandbox session is closed")

    # -- paths and files -------------------------------------------------------------

    @property
    def workdir(self) -> str:
        return self.spec.workdir

    def _mount_of(self, parts: list[str]) -> tuple[list[str], Path, Mount] | None:
        for entry in self._mounts:
            if parts[: len(entry[0])] == entry[0]:
                return entry
        return None

    def resolve(self, path: str) -> str:
        """Map a sandbox path to its host path: under a mount's source when it lies at or
        under the mount's target, else under the session root (no escaping via ..)."""
        if not path.startswith("/"):
            path = f"{self.spec.workdir.rstrip('/')}/{path}"
        parts = _parts(path)
        mounted = self._mount_of(parts)
        if mounted is not None:
            target, source, _ = mounted
            return str(source.joinpath(*parts[len(target) :]))
        return str(self.root.joinpath(*parts)) if parts else str(self.root)

    def map_env_value(self, value: str) -> str:
        """An env value written in sandbox terms, as commands of this session must see it.

        Each `:`-separated element (so PATH-like lists and `unix:/path` work) that is an
        absolute path at or under a mount target, or naming something that exists in the
        session root, becomes `resolve(element)`; every other element is kept as is.
        """
        elements = value.split(":")
        for i, element in enumerate(elements):
            if not element.startswith("/"):
                continue
            parts = _parts(element)
            if self._mount_of(parts) is not None or (parts and os.path.lexists(self.root.joinpath(*parts))):
                elements[i] = self.resolve(element)
        return ":".join(elements)

    def put(self, path: str, data: bytes | Path) -> None:
        """Write bytes to `path`, or copy a host file/directory there."""
        self._check_open()
        mounted = self._mount_of(_parts(path if path.startswith("/") else f"{self.spec.workdir}/{path}"))
        if mounted is not None and mounted[2].read_only:
            raise SandboxError(f"cannot put {path}: {mounted[2].target} is mounted read-only")
        target = Path(self.resolve(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if isinstance(data, (bytes, bytearray)):
                target.write_bytes(bytes(data))
            elif Path(data).is_dir():
                shutil.copytree(data, target, symlinks=True, dirs_exist_ok=True)
            elif Path(data).exists():
                shutil.copy2(data, target)
            else:
                raise SandboxError(f"cannot put {data}: no such file or directory")
        except OSError as exc:
            raise SandboxError(f"cannot put {path}: {exc}") from exc

    def get(self, path: str) -> bytes:
        """A file's bytes, or a directory as an uncompressed tar (members `<basename>/...`)."""
        self._check_open()
        source = Path(self.resolve(path))
        if source.is_dir():
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                tar.add(str(source), arcname=source.name or "root")
            return buf.getvalue()
        try:
            return source.read_bytes()
        except OSError as exc:
            raise SandboxError(f"cannot get {path}: {exc.strerror or exc}") from exc

    # -- commands ------------------------------------------------------------------

    def _environment(self, env: Mapping[str, str] | None, token: str) -> dict[str, str]:
        return {
            "PATH": DEFAULT_PATH,
            "HOME": str(self.root / "home"),
            "TMPDIR": str(self.root / "tmp"),
            "LANG": "C.UTF-8",
            **{str(k): self.map_env_value(str(v)) for k, v in {**self.spec.env, **(env or {})}.items()},
            "HGM_EXEC_ID": token,
        }

    def exec(
        self,
        cmd: str | Sequence[str],
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> ExecResult:
        """Run `cmd` (`sh -c` for a string) with a hard deadline that kills its process tree."""
        self._check_open()
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        if not argv:
            raise SandboxError("empty command")
        token = uuid.uuid4().hex
        prefix, preexec = self._backend.launch_prefix(self.spec)
        cwd = self.resolve(workdir or self.spec.workdir)
        started = time.monotonic()
        deadline = started + max(0.0, float(timeout))
        if not os.path.isdir(cwd):  # same outcome as docker exec with a missing workdir
            return ExecResult(126, "", f"cannot chdir to {workdir or self.spec.workdir}: no such directory\n", 0.0)
        try:
            proc = subprocess.Popen(
                prefix + argv,
                cwd=cwd,
                env=self._environment(env, token),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=preexec,
            )
        except OSError as exc:
            raise SandboxError(f"cannot run {argv[0]}: {exc}") from exc
        out, err = HeadTailBuffer(max_output), HeadTailBuffer(max_output)
        timed_out = False
        sinks = {proc.stdout: out, proc.stderr: err}
        sel = selectors.DefaultSelector()
        for pipe in sinks:
            sel.register(pipe, selectors.EVENT_READ)
        try:
            state = self._pump(sel, sinks, deadline, proc)
            if state == "exited":
                # the command ended; background processes holding its output get a moment, then go
                state = self._pump(sel, sinks, min(deadline, time.monotonic() + DRAIN_GRACE))
            elif state == "deadline":
                timed_out = True
            if state != "eof":
                _kill_tree(proc.pid, token)
                self._pump(sel, sinks, time.monotonic() + KILL_GRACE)
        finally:
            if proc.poll() is None:
                _kill_tree(proc.pid, token)
            sel.close()
            for pipe in (proc.stdout, proc.stderr):
                pipe.close()
            proc.wait()
        return ExecResult(
            exit_code=TIMEOUT_EXIT_CODE if timed_out else proc.returncode,
            stdout=out.text(),
            stderr=err.text(),
            duration=time.monotonic() - started,
            timed_out=timed_out,
            truncated=out.truncated or err.truncated,
        )

    @staticmethod
    def _pump(sel: selectors.BaseSelector, sinks: dict, deadline: float, proc: subprocess.Popen | None = None) -> str:
        """Read the pipes until "eof" (and, given `proc`, its exit), the "deadline", or until
        `proc` "exited" while its pipes are still open."""
        while True:
            now = time.monotonic()
            if now >= deadline:
                return "deadline"
            if not sel.get_map():
                if proc is None or proc.poll() is not None:
                    return "eof"
                try:
                    proc.wait(timeout=min(deadline - now, 0.1))
                except subprocess.TimeoutExpired:
                    pass
                continue
            if proc is not None and proc.poll() is not None:
                return "exited"
            for key, _ in sel.select(min(deadline - now, 0.1 if proc is not None else 1.0)):
                chunk = os.read(key.fileobj.fileno(), 1 << 16)
                if chunk:
                    sinks[key.fileobj].write(chunk)
                else:
                    sel.unregister(key.fileobj)


class LocalBackend:
    """Opens `LocalSession`s; probes `unshare`/`prlimit` once per instance and warns once."""

    name = "local"
    python = sys.executable  # commands run on the host: hgm's own interpreter

    def where(self, image: str) -> str:
        """Sessions run on the host whatever the image."""
        return "on this host"

    def __init__(self, cut_network: bool = True) -> None:
        self._cut_network = cut_network
        self._lock = threading.Lock()
        self._net_prefix: list[str] | None = None
        self._warned = False

    def network_prefix(self) -> list[str]:
        """The command prefix that cuts the network, [] when not permitted (cached)."""
        with self._lock:
            if self._net_prefix is None:
                self._net_prefix = []
                if self._cut_network and shutil.which("unshare"):
                    for prefix in (["unshare", "--net", "--"], ["unshare", "--map-root-user", "--net", "--"]):
                        try:
                            probe = subprocess.run(prefix + ["true"], capture_output=True, timeout=10, env={"PATH": DEFAULT_PATH})
                        except (OSError, subprocess.TimeoutExpired):
                            continue
                        if probe.returncode == 0:
                            self._net_prefix = prefix
                            break
                if self._net_prefix and shutil.which("ip", path=DEFAULT_PATH):
                    # a fresh namespace has loopback down; Docker's "none" network has it up
                    self._net_prefix = self._net_prefix + ["sh", "-c", LOOPBACK_UP, "hgm-netns"]
            return self._net_prefix

    @property
    def network_isolated(self) -> bool:
        return bool(self.network_prefix())

    def launch_prefix(self, spec: SandboxSpec) -> tuple[list[str], object]:
        """(argv prefix, preexec_fn) applying network cut and rlimits for `spec`."""
        limits = spec.limits
        mb = 1024 * 1024
        rlimits = [
            (resource.RLIMIT_AS, limits.memory_mb * mb),
            (resource.RLIMIT_FSIZE, limits.file_size_mb * mb),
            (resource.RLIMIT_NPROC, limits.pids),
        ]
        if limits.cpu_seconds:
            rlimits.append((resource.RLIMIT_CPU, int(limits.cpu_seconds)))
        prefix = list(self.network_prefix())
        if shutil.which("prlimit"):
            names = {
                resource.RLIMIT_AS: "as",
                resource.RLIMIT_FSIZE: "fsize",
                resource.RLIMIT_NPROC: "nproc",
                resource.RLIMIT_CPU: "cpu",
            }
            prefix += ["prlimit"] + [f"--{names[which]}={value}" for which, value in rlimits] + ["--"]
            return prefix, None
        return prefix, _rlimit_preexec(rlimits)

    def open(self, spec: SandboxSpec) -> LocalSession:
        with self._lock:
            warn, self._warned = not self._warned, True
        if warn:
            log.warning(WEAKER_ISOLATION_WARNING.format(limitations="; ".join(self.limitations())))
        return LocalSession(self, spec)

    def remove_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        """Remove the session directories under the temp dir whose labels include all of
        `labels`, killing processes still running in them (call when none is in use)."""
        removed = []
        for root in Path(tempfile.gettempdir()).glob(f"{ROOT_PREFIX}*"):
            try:
                found = json.loads((root / LABELS_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if not isinstance(found, dict) or any(found.get(k) != v for k, v in labels.items()):
                continue
            _kill_marked(f"TMPDIR={root / 'tmp'}".encode())
            shutil.rmtree(root, ignore_errors=True)
            removed.append(root.name)
        return removed

    def limitations(self) -> list[str]:
        """What this backend cannot enforce here, as reported in its warning."""
        found = [AS_ROOT] if os.geteuid() == 0 else []
        found += ["same user and file system as hgm", "read-only mounts not enforced on commands"]
        if not self.network_prefix():
            found.append(NETWORK_NOT_CUT if self._cut_network else "network not cut (cut_network=False)")
        return found + ["memory/process limits via rlimits only"]
