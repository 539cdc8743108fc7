"""Docker backend: one throw-away container per session, work done through `docker exec`.

Design choices
--------------
* **Writable root in a throw-away container** (not a read-only root plus bind mounts).
  Docker's `put_archive` refuses a read-only root file system, and bind mounts would
  need host directories whose ownership matches uid 1000 and that hgm must clean up
  (files created inside are not ours to delete without root). The container's writable
  layer is private to the session and disappears with `docker rm`, which is what we
  want. Isolation does not come from a read-only root but from running as **uid 1000**
  (user `hgm` of the base image, the image's default user) with **all capabilities
  dropped** and `no-new-privileges`: /etc, /usr, / are root's and stay unwritable to
  the agent; it may write /work, /tmp and its home. Extra mounts (the LLM gateway
  socket directory, read-only sources) are bind mounts.
* **Environment.** Every exec sees the image's PATH (the standard one when the image
  sets none), HOME=/tmp (writable whatever the user and image), then `spec.env` (set on
  the container), then the exec's env. Mounts and env are used as given: sandbox paths
  are real paths here.
* **No network** (`network_mode="none"`); the only way out is a mounted unix socket.
  Connecting to a unix socket on a read-only bind mount works (Linux checks the
  read-only flag only for regular files, directories and symlinks).
* **Hard exec deadline.** `docker exec` has no timeout and killing the client leaves the
  command running. Each command runs under `setsid` (its own session and process group)
  with a unique `HGM_EXEC_ID` in its environment. At the deadline a second exec scans
  /proc for processes carrying that id and SIGKILLs their process groups and themselves
  (this also catches children that called setsid again). If that exec cannot run (a
  fork bomb filled the pids limit) or the output stream still does not end, the
  host-side backstop kills the container's init (all processes die with it) and starts
  it again: the writable layer, hence the session's files, survive.
  Background processes a command leaves behind are killed the same way once the command
  itself has ended (after DRAIN_GRACE), so `exec` returns with the command's exit code
  instead of waiting for the deadline on a pipe some daemon keeps open.
* **Bounded output.** The exec's multiplexed stream is read from the raw socket with
  `select` (so the deadline holds even while nothing is printed) into head+tail buffers.
* **Always removed.** `close()` (context manager, exceptions, Ctrl-C) force-removes the
  container with SIGINT deferred while doing so; a `weakref.finalize` removes it at
  interpreter exit if the caller forgot; `remove_leftovers()` (`hgm sandbox gc`) removes
  anything labelled `hgm=1` that survived a hard kill, and `DockerBackend.remove_leftovers(labels)`
  what one run left behind (`hgm resume` calls it).
* **Stopped from outside.** A command whose container was killed or stopped meanwhile
  (`docker kill`, an engine restart) raises SandboxError instead of returning an exit code,
  so the caller never grades what a broken sandbox left; `DockerBackend.problem()` says
  whether the engine answers at all.
"""

from __future__ import annotations

import io
import logging
import os
import re
import select
import shlex
import signal
import struct
import tarfile
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import docker
import docker.errors
import docker.types

from sandbox.api import DEFAULT_MAX_OUTPUT, DEFAULT_PATH, ExecResult, SandboxError, SandboxSpec
from sandbox.capture import HeadTailBuffer
from sandbox.images import docker_client, image_config

log = logging.getLogger(__name__)

LABEL_ALL = "hgm"
LABEL_RUN = "hgm.run"
LABEL_PURPOSE = "hgm.purpose"
TIMEOUT_EXIT_CODE = 124  # like coreutils `timeout`
PUT_SPOOL_BYTES = 32 * 1024 * 1024
KILL_GRACE = 3.0  # seconds to wait for the stream to end after the kill exec
DRAIN_GRACE = 0.5  # seconds background processes may keep the output open after the command ended
EXIT_POLL = 0.5  # how often a quiet stream checks whether the command has ended
DEFAULT_HOME = "/tmp"  # writable for any user, also in images without the user's home
PROBE_TIMEOUT = 5  # seconds `problem()` waits for the engine to answer
ALIVE_GRACE = 1.0  # seconds a killed-looking command waits to see its container stop

# Kills every process that carries HGM_EXEC_ID=$1 and the process groups they lead.
# Runs as the session user (root in the container has no CAP_KILL over uid 1000).
KILL_SCRIPT = r"""
t="HGM_EXEC_ID=$1"; n=0
while [ $n -lt 4 ]; do
  pids=""
  for d in /proc/[0-9]*; do
    grep -qsxzF -e "$t" "$d/environ" && pids="$pids ${d#/proc/}"
  done
  [ -z "$pids" ] && exit 0
  for p in $pids; do kill -KILL -$p 2>/dev/null; kill -KILL $p 2>/dev/null; done
  n=$((n+1))
done
"""


def _parse_ids(user: str) -> tuple[int, int] | None:
    uid, _, gid = user.partition(":")
    if uid.isdigit() and (not gid or gid.isdigit()):
        return int(uid), int(gid or uid)
    return None


def _remove_container(client: docker.DockerClient, container_id: str) -> None:
    try:
        client.api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if "already in progress" not in str(exc):
            raise


def _shielded(fn, *args) -> None:
    """Run fn with SIGINT deferred (main thread only), then re-raise a deferred Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        fn(*args)
        return
    pending: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda sig, frame: pending.append(sig))
    except ValueError:  # not the main interpreter
        fn(*args)
        return
    try:
        fn(*args)
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


def remove_leftovers(
    run_id: str | None = None, client: docker.DockerClient | None = None, labels: Mapping[str, str] | None = None
) -> list[str]:
    """Force-remove every container labelled hgm=1 (optionally of one run, or carrying all
    of `labels`); return their names."""
    own = client is None
    client = client or docker_client()
    try:
        wanted = [f"{LABEL_ALL}=1"] + ([f"{LABEL_RUN}={run_id}"] if run_id else [])
        wanted += [f"{k}={v}" for k, v in (labels or {}).items()]
        filters = {"label": wanted}
        removed = []
        for info in client.api.containers(all=True, filters=filters):
            _remove_container(client, info["Id"])
            removed.append((info.get("Names") or [info["Id"][:12]])[0].lstrip("/"))
        return removed
    finally:
        if own:
            client.close()


class _StreamDemuxer:
    """Parses Docker's multiplexed exec stream (8-byte frame headers) incrementally."""

    def __init__(self, out: HeadTailBuffer, err: HeadTailBuffer) -> None:
        self._sinks = {1: out, 2: err}
        self._header = bytearray()
        self._remaining = 0
        self._stream = 1

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._remaining == 0:
                need = 8 - len(self._header)
                self._header += view[:need]
                view = view[need:]
                if len(self._header) == 8:
                    kind, size = struct.unpack(">BxxxL", bytes(self._header))
                    self._header.clear()
                    self._stream, self._remaining = (kind if kind in (1, 2) else 1), size
                continue
            take = view[: self._remaining]
            self._sinks[self._stream].write(bytes(take))
            self._remaining -= len(take)
            view = view[len(take) :]


class DockerSession:
    """One running container; see the module docstring for how it is used."""

    def __init__(self, backend: DockerBackend, spec: SandboxSpec) -> None:
        self._backend = backend
        self._client = backend.client
        self.spec = spec
        self._lock = threading.Lock()
        self._closed = False
        self.container_id: str | None = None
        purpose = re.sub(r"[^a-zA-Z0-9_.-]", "-", str(spec.labels.get(LABEL_PURPOSE, "sbx")))[:40]
        self.name = f"hgm-{purpose}-{uuid.uuid4().hex[:10]}"
        self._user = spec.user if spec.user is not None else backend.default_user(spec.image)
        self._ids: tuple[int, int] | None = _parse_ids(self._user) if self._user else (0, 0)
        self._start()

    # -- lifecycle -----------------------------------------------------------------

    def _start(self) -> None:
        spec, limits = self.spec, self.spec.limits
        labels = {LABEL_RUN: "none", LABEL_PURPOSE: "adhoc", **dict(spec.labels), LABEL_ALL: "1"}
        mounts = [
            docker.types.Mount(target=m.target, source=str(Path(m.source).resolve()), type="bind", read_only=m.read_only)
            for m in spec.mounts
        ]
        fsize = limits.file_size_mb * 1024 * 1024
        host_config = self._client.api.create_host_config(
            network_mode="none",
            mem_limit=f"{limits.memory_mb}m",
            memswap_limit=f"{limits.memory_mb}m",
            nano_cpus=int(limits.cpus * 1e9),
            pids_limit=limits.pids,
            init=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mounts=mounts,
            ulimits=[docker.types.Ulimit(name="fsize", soft=fsize, hard=fsize)],
        )
        try:
            created = self._client.api.create_container(
                spec.image,
                command=["sleep", "infinity"],
                name=self.name,
                labels=labels,
                environment=self._backend.base_env(spec.image) | {str(k): str(v) for k, v in spec.env.items()},
                user=self._user or "",
                host_config=host_config,
                network_disabled=True,
            )
        except docker.errors.ImageNotFound as exc:
            raise SandboxError(f"image {spec.image} not found; run `hgm sandbox build-base`") from exc
        except docker.errors.APIError as exc:
            raise SandboxError(f"cannot create a container from {spec.image}: {exc.explanation or exc}") from exc
        self.container_id = created["Id"]
        self._finalizer = weakref.finalize(self, _remove_container, self._client, self.container_id)
        try:
            self._client.api.start(self.container_id)
            if spec.workdir != self._backend.image_workdir(spec.image):
                self._run_quiet(["mkdir", "-p", spec.workdir])
        except BaseException as exc:
            self.close()
            if isinstance(exc, docker.errors.APIError):
                raise SandboxError(f"cannot start the sandbox: {exc.explanation or exc}") from exc
            raise

    def close(self) -> None:
        """Force-remove the container (idempotent; Ctrl-C is deferred until it is gone)."""
        with self._lock:
            if self._closed or self.container_id is None:
                self._closed = True
                return
            self._closed = True
        _shielded(self._finalizer)

    def __enter__(self) -> DockerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> str:
        if self._closed or self.container_id is None:
            raise SandboxError("the sandbox session is closed")
        return self.container_id

    # -- paths and files -------------------------------------------------------------

    @property
    def workdir(self) -> str:
        return self.spec.workdir

    def resolve(self, path: str) -> str:
        """Sandbox paths are real paths inside the container."""
        return path if path.startswith("/") else f"{self.spec.workdir.rstrip('/')}/{path}"

    def _owner(self) -> tuple[int, int]:
        if self._ids is None:
            res = self._run_quiet(["sh", "-c", "id -u; id -g"])
            uid, gid = (int(x) for x in res.split())
            self._ids = (uid, gid)
        return self._ids

    def put(self, path: str, data: bytes | Path) -> None:
        """Write bytes to `path`, or copy a host file/directory there (owned by the session user)."""
        cid = self._check_open()
        path = self.resolve(path)
        parent, name = os.path.split(path.rstrip("/"))
        uid, gid = self._owner()
        # large trees spill to disk instead of being held in memory twice
        with tempfile.SpooledTemporaryFile(max_size=PUT_SPOOL_BYTES) as buf:
            with tarfile.open(fileobj=buf, mode="w") as tar:

                def own(info: tarfile.TarInfo) -> tarfile.TarInfo:
                    info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
                    return info

                if isinstance(data, (bytes, bytearray)):
                    info = own(tarfile.TarInfo(name))
                    info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
                    tar.addfile(info, io.BytesIO(bytes(data)))
                else:
                    source = Path(data)
                    if not source.exists():
                        raise SandboxError(f"cannot put {source}: no such file or directory")
                    tar.add(str(source), arcname=name, filter=own)
            try:
                for attempt in (1, 2):
                    buf.seek(0)
                    try:
                        ok = self._client.api.put_archive(cid, parent or "/", buf)
                        break
                    except docker.errors.NotFound:
                        if attempt == 2:
                            raise
                        self._run_quiet(["mkdir", "-p", parent])
            except docker.errors.APIError as exc:
                raise SandboxError(f"cannot put {path}: {exc.explanation or exc}") from exc
        if not ok:
            raise SandboxError(f"cannot put {path}")

    def get(self, path: str) -> bytes:
        """A file's bytes, or a directory as an uncompressed tar (members `<basename>/...`)."""
        cid = self._check_open()
        path = self.resolve(path)
        try:
            stream, stat = self._client.api.get_archive(cid, path)
            raw = b"".join(stream)
        except docker.errors.NotFound as exc:
            raise SandboxError(f"cannot get {path}: no such file or directory") from exc
        except docker.errors.APIError as exc:
            raise SandboxError(f"cannot get {path}: {exc.explanation or exc}") from exc
        is_dir = bool(stat.get("mode", 0) & (1 << 31))  # Go's os.ModeDir
        if is_dir:
            return raw
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            member = tar.next()
            if member is None:
                raise SandboxError(f"cannot get {path}: empty archive")
            if member.issym() or member.islnk():
                raise SandboxError(f"cannot get {path}: it is a link to {member.linkname}")
            handle = tar.extractfile(member)
            return handle.read() if handle else b""

    # -- commands ------------------------------------------------------------------

    def _run_quiet(self, argv: list[str], user: str | None = None) -> str:
        """A short helper exec without deadline handling; SandboxError when it fails."""
        cid = self._check_open()
        try:
            exec_id = self._client.api.exec_create(cid, argv, user=self._user if user is None else user)["Id"]
            out = self._client.api.exec_start(exec_id)
            code = self._client.api.exec_inspect(exec_id).get("ExitCode")
        except docker.errors.APIError as exc:
            raise SandboxError(f"exec {argv[0]} failed: {exc.explanation or exc}") from exc
        if code not in (0, None):
            raise SandboxError(f"{shlex.join(argv)} failed (exit {code}): {out.decode(errors='replace')[:300]}")
        return out.decode(errors="replace")

    def exec(
        self,
        cmd: str | Sequence[str],
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> ExecResult:
        """Run `cmd` (`sh -c` for a string) with a hard deadline; see the module docstring."""
        cid = self._check_open()
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        if not argv:
            raise SandboxError("empty command")
        token = uuid.uuid4().hex
        environment = {**{str(k): str(v) for k, v in (env or {}).items()}, "HGM_EXEC_ID": token}
        started = time.monotonic()
        deadline = started + max(0.0, float(timeout))
        try:
            exec_id = self._client.api.exec_create(
                cid,
                ["setsid", "-w", *argv],
                environment=environment,
                workdir=self.resolve(workdir) if workdir else self.spec.workdir,
                user=self._user or "",
            )["Id"]
            sock = self._client.api.exec_start(exec_id, socket=True)
        except docker.errors.APIError as exc:
            raise SandboxError(f"cannot run a command in the sandbox: {exc.explanation or exc}") from exc
        out, err = HeadTailBuffer(max_output), HeadTailBuffer(max_output)
        demux = _StreamDemuxer(out, err)
        raw = getattr(sock, "_sock", sock)
        timed_out = False
        try:
            state = self._pump(raw, demux, deadline, lambda: self._exec_finished(exec_id))
            if state == "exited":
                # the command ended but background processes still hold its output open:
                # give them a moment, then they go (a sandbox exec is not a daemon launcher)
                state = self._pump(raw, demux, min(deadline, time.monotonic() + DRAIN_GRACE))
                if state != "eof":
                    self._kill_exec(token)
                    state = self._pump(raw, demux, time.monotonic() + KILL_GRACE)
            elif state == "deadline":
                timed_out = True
                self._kill_exec(token)
                state = self._pump(raw, demux, time.monotonic() + KILL_GRACE)
            if state != "eof":
                self._restart()
        except BaseException:
            # Ctrl-C or a broken stream: do not leave the command running in the container
            if not self._closed:
                _shielded(self._kill_exec, token)
            raise
        finally:
            try:
                sock.close()
            except OSError:
                pass
        exit_code = TIMEOUT_EXIT_CODE if timed_out else self._exit_code(exec_id)
        if exit_code == -1 or exit_code >= 128:
            self._check_alive(exit_code)
        stdout, stderr = out.text(), err.text()
        if exit_code == 126 and stdout.startswith("OCI runtime exec failed"):
            stdout, stderr = "", stdout.strip() + "\n"  # the runtime reports on the output stream
        return ExecResult(
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            duration=time.monotonic() - started,
            timed_out=timed_out,
            truncated=out.truncated or err.truncated,
        )

    @staticmethod
    def _pump(raw, demux: _StreamDemuxer, deadline: float, finished: Callable[[], bool] | None = None) -> str:
        """Read the stream until "eof", the "deadline", or (polled) the command "exited"."""
        next_poll = time.monotonic() + EXIT_POLL
        while True:
            now = time.monotonic()
            if now >= deadline:
                return "deadline"
            if finished is not None and now >= next_poll:
                next_poll = now + EXIT_POLL
                if finished():
                    return "exited"
            ready, _, _ = select.select([raw], [], [], min(deadline - now, EXIT_POLL))
            if not ready:
                continue
            try:
                chunk = raw.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return "eof"
            if not chunk:
                return "eof"
            demux.feed(chunk)

    def _check_alive(self, exit_code: int) -> None:
        """Raise SandboxError when the container is gone or stopped (killed from outside).

        A command killed with the container ends a moment before the engine records the
        container as stopped, so a killed-looking command waits up to ALIVE_GRACE for that.
        """
        deadline = time.monotonic() + ALIVE_GRACE
        while True:
            try:
                state = self._client.api.inspect_container(self.container_id).get("State") or {}
            except docker.errors.NotFound:
                raise SandboxError(f"the sandbox container {self.name} was removed from outside") from None
            except (docker.errors.DockerException, OSError) as exc:
                raise SandboxError(f"the Docker engine stopped answering ({exc.__class__.__name__})") from exc
            if not state.get("Running") or state.get("Restarting"):
                raise SandboxError(f"the sandbox container {self.name} was stopped from outside "
                                   f"(command exit {exit_code}, container exit {state.get('ExitCode')})")
            if time.monotonic() >= deadline:
                return
            time.sleep(0.05)

    def _exec_finished(self, exec_id: str) -> bool:
        try:
            return not self._client.api.exec_inspect(exec_id).get("Running", True)
        except docker.errors.APIError:
            return False

    def _exit_code(self, exec_id: str) -> int:
        for _ in range(100):
            info = self._client.api.exec_inspect(exec_id)
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            time.sleep(0.02)
        return -1

    def _kill_exec(self, token: str) -> None:
        try:
            exec_id = self._client.api.exec_create(
                self.container_id, ["sh", "-c", KILL_SCRIPT, "hgm-kill", token], user=self._user or ""
            )["Id"]
            self._client.api.exec_start(exec_id)
        except docker.errors.APIError:
            self._restart()  # e.g. the pids limit is full: no new process can start

    def _restart(self) -> None:
        """Backstop: kill every process by killing the container's init, then start again."""
        log.warning("sandbox %s: a runaway command could not be killed from inside; restarting the container", self.name)
        try:
            self._client.api.kill(self.container_id)
        except docker.errors.APIError:
            pass
        try:
            self._client.api.wait(self.container_id, timeout=30)
            self._client.api.start(self.container_id)
        except Exception as exc:  # noqa: BLE001
            raise SandboxError(f"the sandbox could not be restarted after a runaway command: {exc}") from exc


class DockerBackend:
    """Opens `DockerSession`s; one docker client per backend instance."""

    name = "docker"
    python = "python3"  # looked up on the image's PATH (hgm-base and images built FROM it have it)

    def where(self, image: str) -> str:
        """Sessions run inside the image."""
        return f"in image {image}"

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._from_env = client is None  # then `problem()` can open a fresh connection the same way
        self.client = client or docker_client()
        self._image_cache: dict[str, dict] = {}
        self._lock = threading.Lock()

    def _config(self, image: str) -> dict:
        with self._lock:
            if image not in self._image_cache:
                self._image_cache[image] = image_config(image, self.client)
            return self._image_cache[image]

    def default_user(self, image: str) -> str:
        """The image's configured user ('' = root)."""
        return self._config(image).get("User") or ""

    def image_workdir(self, image: str) -> str:
        return self._config(image).get("WorkingDir") or "/"

    def base_env(self, image: str) -> dict[str, str]:
        """What every session of `image` starts with: the image's PATH (or the standard
        one) and HOME=/tmp; the spec's env and each exec's env go over it."""
        image_env = dict(item.partition("=")[::2] for item in self._config(image).get("Env") or [])
        return {"PATH": image_env.get("PATH") or DEFAULT_PATH, "HOME": DEFAULT_HOME}

    def open(self, spec: SandboxSpec) -> DockerSession:
        return DockerSession(self, spec)

    def problem(self) -> str | None:
        """Why sandboxes cannot run now (the engine does not answer), or None.

        Asked on a fresh connection: an engine that is shutting down still answers on the
        connections it has (the client's pool) while refusing new ones.
        """
        probe = None
        try:
            probe = docker.from_env(timeout=PROBE_TIMEOUT) if self._from_env else self.client
            probe.ping()
        except Exception as exc:  # noqa: BLE001 - requests/docker errors alike
            text = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
            return f"the Docker engine does not answer ({text})"
        finally:
            if probe is not None and probe is not self.client:
                probe.close()
        return None

    def remove_leftovers(self, labels: Mapping[str, str]) -> list[str]:
        """Remove every container carrying all of `labels` (call when none of them is in use)."""
        return remove_leftovers(client=self.client, labels=labels)

    def close(self) -> None:
        self.client.close()
