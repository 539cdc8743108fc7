"""The files of an agent directory (as `hgm export` writes it), and how two of them differ.

An agent directory holds the `agent/` package at its top. Byte-code caches, git
metadata and the loop's checkout marker are not part of a version and are ignored.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "agent"
IGNORED_DIRS = frozenset({".git", "__pycache__"})
IGNORED_FILES = frozenset({".complete"})
IGNORED_SUFFIXES = (".pyc", ".pyo")


def agent_files(root: Path) -> dict[str, bytes]:
    """Every file under `root` (posix relative path -> content), ignored files left out.

    Symbolic links are read as their target path (a link is part of the tree, not a way
    out of it).
    """
    root = Path(root)
    files: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS)
        for name in sorted(filenames):
            if name in IGNORED_FILES or name.endswith(IGNORED_SUFFIXES):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            files[rel] = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    return files


@dataclass(frozen=True)
class Change:
    """How a child's files differ from its parent's."""

    parent: dict[str, bytes]
    child: dict[str, bytes]

    @property
    def added(self) -> list[str]:
        return sorted(set(self.child) - set(self.parent))

    @property
    def removed(self) -> list[str]:
        return sorted(set(self.parent) - set(self.child))

    @property
    def modified(self) -> list[str]:
        return sorted(p for p in set(self.parent) & set(self.child) if self.parent[p] != self.child[p])

    @property
    def touched(self) -> list[str]:
        """Added, removed and modified paths, sorted."""
        return sorted(set(self.added) | set(self.removed) | set(self.modified))

    def digest(self) -> str:
        """sha256 of the change: every touched path with the hashes of its old and new content."""
        h = hashlib.sha256()
        for path in self.touched:
            old, new = self.parent.get(path), self.child.get(path)
            h.update(f"{path}\0{_sha(old)}\0{_sha(new)}\n".encode())
        return h.hexdigest()


def tree_digest(files: dict[str, bytes]) -> str:
    """sha256 identifying a set of files (a rejected child has no commit; this names it)."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path}\0{_sha(files[path])}\n".encode())
    return h.hexdigest()


def compare(parent_dir: Path, child_dir: Path) -> Change:
    return Change(agent_files(parent_dir), agent_files(child_dir))


def in_package(path: str) -> bool:
    return path.startswith(PACKAGE + "/")


def is_binary(data: bytes) -> bool:
    """NUL bytes or not UTF-8: a blob, not source."""
    if b"\0" in data[:65536]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def line_count(files: dict[str, bytes]) -> int:
    return sum(data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0) for data in files.values())


def _sha(data: bytes | None) -> str:
    return "-" if data is None else hashlib.sha256(data).hexdigest()
