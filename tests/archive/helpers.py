"""Helpers for archive tests: a small agent tree, and a snapshot proving nothing was written."""

from __future__ import annotations

import os
from pathlib import Path


def make_agent(path: Path, body: str = "print('seed')\n") -> Path:
    """A tiny agent source tree with a package, an executable script and a byte-code cache."""
    (path / "agent").mkdir(parents=True)
    (path / "agent" / "__init__.py").write_text("")
    (path / "agent" / "main.py").write_text(body)
    script = path / "run.sh"
    script.write_text("#!/bin/sh\necho run\n")
    script.chmod(0o755)
    (path / "agent" / "__pycache__").mkdir()
    (path / "agent" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\x00junk")
    return path


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root (and root itself) with size and mtime, to prove nothing was written."""
    result = {}
    if root.exists():
        result["."] = (0, root.stat().st_mtime_ns)
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                full = Path(dirpath) / name
                st = full.lstat()
                result[str(full.relative_to(root))] = (st.st_size if full.is_file() else 0, st.st_mtime_ns)
    return result


def without_shm(snap: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """A reader maps hgm.db-shm (SQLite's shared index) and may touch it; it holds no data."""
    return {k: v for k, v in snap.items() if not k.endswith("hgm.db-shm")}


def fill_disk(directory: Path) -> Path:
    """Fill the file system holding `directory` to the last byte; return the filler file."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for size in (1 << 20, 65536, 4096, 512, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError:
                pass
    return filler
