"""What travels between the head and a Ray worker node, as bytes (no Ray in here).

- An agent version travels as a git bundle of its branch, keyed by its commit (the
  version's content hash), and is checked out once per node into hgm's cache
  (`agent_tree`); later jobs on that node find it there.
- A job's artifacts (an evaluation's output directory, an expansion's work directory)
  come back as a gzipped tar (`pack_dir` / `unpack_dir`); unpacking refuses absolute
  paths, links out of the directory and device files (tarfile's `data` filter).
- An expansion's inputs, the parent's evaluation artifacts, go out as one tar with the
  evaluation views rewritten to paths inside it (`pack_eval_views` / `unpack_eval_views`).
"""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from evaluators.repos import cache_dir, cached_dir

from hgm.evolve.lessons import EvalView

_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class TransferError(RuntimeError):
    """An agent version or a job's files could not be moved or unpacked."""


def pack_dir(src: Path) -> bytes:
    """`src`'s files as a gzipped tar, paths relative to `src` (b"" when it does not exist)."""
    src = Path(src)
    if not src.is_dir():
        return b""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(src.rglob("*")):
            if "__pycache__" in path.parts:
                continue
            tar.add(path, arcname=str(path.relative_to(src)), recursive=False)
    return buffer.getvalue()


def _safe_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's `data` filter, skipping (not failing on) a member it refuses."""
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError:
        return None


def unpack_dir(data: bytes, dest: Path) -> Path:
    """Extract a `pack_dir` tar into `dest` (created); unsafe members are skipped."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if not data:
        return dest
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            tar.extractall(dest, filter=_safe_member)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise TransferError(f"cannot unpack job files into {dest}: {exc}") from None
    return dest


def agent_tree(commit: str, fetch_bundle: Callable[[], bytes], root: Path | None = None) -> Path:
    """The files of agent version `commit` on this node, checked out from its bundle once.

    `fetch_bundle()` is called only when the version is not cached yet. The cache is
    `root` (default: hgm's cache directory, `agents/`), one directory per commit, built
    under a temporary name and renamed into place, so concurrent jobs never see half of it.
    """
    if not _COMMIT.match(commit):
        raise TransferError(f"not a commit id: {commit!r}")
    target = (Path(root) if root is not None else cache_dir() / "agents") / commit
    return cached_dir(target, lambda out: _checkout_bundle(fetch_bundle(), commit, out))


def _git(*args: str) -> bytes:
    done = subprocess.run(["git", "-c", "safe.directory=*", *args], capture_output=True, timeout=300)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise TransferError(f"git {args[0]} failed: {tail[0]}")
    return done.stdout


def _checkout_bundle(bundle: bytes, commit: str, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="hgm-bundle-") as tmp:
        path = Path(tmp) / "agent.bundle"
        path.write_bytes(bundle)
        repo = Path(tmp) / "repo.git"
        _git("clone", "--quiet", "--bare", str(path), str(repo))
        if _git("--git-dir", str(repo), "rev-parse", "--verify", f"{commit}^{{commit}}").decode().strip() != commit:
            raise TransferError(f"the bundle does not hold version {commit[:12]}")
        files = _git("--git-dir", str(repo), "archive", "--format=tar", commit)
    out.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(files), mode="r:") as tar:
        tar.extractall(out, filter="data")


def pack_eval_views(views: Sequence[EvalView]) -> tuple[bytes, list[EvalView]]:
    """The artifacts an expansion may read of `views`, and the views with paths inside the tar.

    For each evaluation: every file next to its trajectory (patch, report, test log, ...)
    and its log file; paths become `e<i>/<name>` (None stays None).
    """
    buffer = io.BytesIO()
    moved = []
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for i, view in enumerate(views):
            folder = Path(view.trajectory_path).parent if view.trajectory_path else None
            if folder is not None and folder.is_dir():
                for path in sorted(p for p in folder.iterdir() if p.is_file()):
                    tar.add(path, arcname=f"e{i}/{path.name}")
            log = Path(view.log_path) if view.log_path else None
            if log is not None and log.is_file() and log.parent != folder:
                tar.add(log, arcname=f"e{i}/{log.name}")
            moved.append(dataclasses.replace(
                view,
                trajectory_path=f"e{i}/{Path(view.trajectory_path).name}" if view.trajectory_path else None,
                log_path=f"e{i}/{log.name}" if log is not None else None,
            ))
    return buffer.getvalue(), moved


def unpack_eval_views(data: bytes, views: Sequence[EvalView], dest: Path) -> list[EvalView]:
    """Unpack a `pack_eval_views` tar into `dest`; the views with absolute paths there."""
    unpack_dir(data, dest)

    def absolute(path: str | None) -> str | None:
        return str(Path(dest) / path) if path else None

    return [dataclasses.replace(v, trajectory_path=absolute(v.trajectory_path), log_path=absolute(v.log_path))
            for v in views]
