"""What a session leaves behind, and how the next one finds it after a kill -9.

Nothing of a session outlives it: its temporary files live under one folder per run
(`temp_root`: the session makes it the process's temp folder), its gateway sockets under
another (`gateway_dir`), its sandboxes carry the label `hgm.run_dir=<run path>`. Both
folders are named by `run_key`, a hash of the run's path, so the next session of the same
run finds them. Holding the run's lock, a new session removes whatever a dead one left
there (`remove_leftovers`), and every session sweeps its own sandboxes once more when it
ends (`sweep`: e.g. containers an engine restart left).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

LABEL_RUN_DIR = "hgm.run_dir"  # every sandbox of a run carries its absolute path
RUN_TMP_PREFIX = "hgm-"  # + the run key: short, since sockets made under it are limited to 107 bytes
GATEWAY_PREFIX = "hgm-gw-"


def run_key(run_path: Path) -> str:
    """A short name for the run directory, the same in every session (its absolute path hashed)."""
    return hashlib.sha256(str(Path(run_path).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:12]


def system_temp() -> Path:
    """The temp folder of this host (the session's own one is inside it)."""
    return Path(tempfile.gettempdir())


def temp_root(run_path: Path, base: Path | None = None) -> Path:
    """Where a session of the run keeps every temporary file and local sandbox."""
    return (base or system_temp()) / f"{RUN_TMP_PREFIX}{run_key(run_path)}"


def gateway_dir(run_path: Path) -> Path:
    """Where the run's gateway sockets live (short: unix socket paths are limited to 107 bytes)."""
    base = Path("/tmp") if Path("/tmp").is_dir() else system_temp()
    return base / f"{GATEWAY_PREFIX}{run_key(run_path)}"


@contextlib.contextmanager
def session_tempdir(root: Path) -> Iterator[Path]:
    """Make `root` this process's temp folder (tempfile.tempdir) until the session ends, then remove it.

    Process-wide on purpose: every temporary file of the session (git indexes, grading
    copies, local sandboxes) must land where the next session can find it after a kill -9.
    """
    previous = tempfile.tempdir
    root.mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(root)
    try:
        yield root
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(root, ignore_errors=True)


def remove_leftovers(run_path: Path, backend: Any, root: Path) -> tuple[list[str], str | None]:
    """Remove what dead sessions of this run left: sandboxes, temp files, gateway sockets.

    Call while holding the run's lock (so no live session owns them) with `root` already
    the process's temp folder. Returns (what was removed, a problem that stopped part of it).
    """
    removed: list[str] = []
    problem = None
    remover = getattr(backend, "remove_leftovers", None)
    if remover is not None:
        try:
            removed += [f"sandbox {name}" for name in remover({LABEL_RUN_DIR: str(Path(run_path).resolve())})]
        except Exception as exc:  # noqa: BLE001 - e.g. the engine is down: say so, go on
            problem = (f"could not remove the run's leftover sandboxes ({exc.__class__.__name__}: {exc}); "
                       f"later: hgm sandbox gc --run {Path(run_path).name}")
    if root.is_dir():
        for child in root.iterdir():
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
            removed.append(f"temp {child.name}")
    sockets = gateway_dir(run_path)
    if sockets.exists():
        shutil.rmtree(sockets, ignore_errors=True)
        removed.append(f"gateway {sockets.name}")
    return removed, problem


def sweep(backend: Any, labels: dict[str, str], notes: list[str]) -> None:
    """Remove sandboxes of this run that outlived their sessions (e.g. across an engine restart)."""
    remover = getattr(backend, "remove_leftovers", None)
    if remover is None:
        return
    try:
        gone = remover(labels)
    except Exception as exc:  # noqa: BLE001 - the engine may be gone; the next session retries
        notes.append(f"could not remove this session's sandboxes ({exc.__class__.__name__}); the next resume will")
        return
    if gone:
        notes.append(f"removed {len(gone)} sandbox(es) that outlived their work")
