"""Task repositories on the host: pristine snapshots at a base commit, put into sandboxes.

A snapshot is a shallow git clone holding exactly one commit, the task's
`base_commit` (same hash, so eval scripts that `git checkout <base_commit> -- tests`
work), with no remote and no other refs: commits after the base (the fix) never
reach a sandbox. Snapshots are cached on the host by (source, commit) under the
hgm cache directory and copied into each sandbox with `Session.put`.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from sandbox.api import SandboxError, Session

# safe.directory through the environment: never touches anyone's ~/.gitconfig
GIT_ENV = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}
GIT = ("git", "-c", "safe.directory=*", "-c", "advice.detachedHead=false")


class RepoError(RuntimeError):
    """A task's repository cannot be produced (missing source, unknown commit)."""


def cache_dir() -> Path:
    """Where hgm keeps derived data: `$HGM_CACHE_DIR`, else `~/.cache/hgm`."""
    root = os.environ.get("HGM_CACHE_DIR") or Path.home() / ".cache" / "hgm"
    return Path(root)


def _git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RepoError(f"git {' '.join(args[:2])} failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    return proc.stdout


def _key(source: Path) -> str:
    stat = source.stat()
    raw = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def cached_dir(target: Path, build: Callable[[Path], None]) -> Path:
    """`target`, built once: `build(tmp)` fills a fresh path that is then renamed into place.

    The rename is atomic, so parallel workers never see a half-built directory; when
    two build at once, the loser's copy is discarded.
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        build(tmp / "out")
        try:
            os.rename(tmp / "out", target)
        except OSError:
            if not target.is_dir():  # someone else won the race, or a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _bare(source: Path, root: Path) -> Path:
    """A bare mirror of `source` (a git bundle or a git repository), cached."""
    target = root / "mirrors" / f"{source.stem}-{_key(source)}.git"
    return cached_dir(target, lambda out: _git("clone", "-q", "--mirror", str(source), str(out)))


def _one_commit_clone(bare: Path, commit: str, out: Path) -> None:
    out.mkdir()
    _git("init", "-q", cwd=out)
    # fetch the one commit by hash: no ref in the shared mirror is touched (workers race)
    _git("-c", "protocol.file.allow=always", "fetch", "-q", "--depth", "1",
         "--upload-pack", "git -c uploadpack.allowAnySHA1InWant=true upload-pack",
         f"file://{bare}", commit, cwd=out)
    _git("checkout", "-q", "--detach", commit, cwd=out)
    for ref in _git("for-each-ref", "--format=%(refname)", cwd=out).split():
        _git("update-ref", "-d", ref, cwd=out)
    (out / ".git" / "FETCH_HEAD").unlink(missing_ok=True)


def snapshot(source: Path, commit: str, root: Path | None = None) -> Path:
    """A host directory holding the repository of `source` at `commit` (cached).

    `source` is a git bundle file or a git repository directory.
    """
    source = Path(source)
    if not source.exists():
        raise RepoError(f"repository source {source} does not exist")
    root = root or cache_dir()
    bare = _bare(source, root)
    try:
        full = _git("rev-parse", "--verify", "-q", f"{commit}^{{commit}}", cwd=bare).strip()
    except RepoError:
        raise RepoError(f"commit {commit} is not in {source}") from None
    target = root / "snapshots" / f"{source.stem}-{_key(source)}-{full[:12]}"
    return cached_dir(target, lambda out: _one_commit_clone(bare, full, out))


def put_repo(session: Session, snapshot_dir: Path, dest: str) -> str:
    """Copy a snapshot into the sandbox at `dest`; return `dest`.

    Commands that run git on it should pass `GIT_ENV`, which tells git to trust
    the directory whoever owns the files.
    """
    session.put(dest, snapshot_dir)
    where = shlex.quote(session.resolve(dest))
    check = session.exec(f"git -C {where} rev-parse HEAD", timeout=60, env=GIT_ENV)
    if not check.ok:
        raise SandboxError(f"repository copy at {dest} is not usable: {check.stderr.strip()[-300:]}")
    return dest


__all__ = ["GIT_ENV", "RepoError", "cache_dir", "cached_dir", "put_repo", "snapshot"]
