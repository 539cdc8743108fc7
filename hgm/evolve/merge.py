"""A three-way merge of two agent versions from their common ancestor, on the host with git.

A throw-away repository gets the ancestor's source as its first commit, each version as a
branch from it, and merges the other version into ours with diff3 conflict markers left
in place. The merged files (markers included) are what a recombining agent starts from.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hgm.evolve.improve import ImproveError, _git

_IGNORE = shutil.ignore_patterns(".git", ".complete", "__pycache__", "*.pyc")
MARKERS = ("<<<<<<< ", ">>>>>>> ")


@dataclass(frozen=True)
class Merge:
    """The merged tree's conflicted files and what each side changed from the ancestor."""

    conflicts: tuple[str, ...]
    ours_diff: str
    theirs_diff: str


def _replace_tree(repo: Path, source: Path) -> None:
    for entry in repo.iterdir():
        if entry.name == ".git":
            continue
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    shutil.copytree(source, repo, ignore=_IGNORE, dirs_exist_ok=True)


def _run(repo: Path, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    done = _git(repo, *args)
    if done.returncode not in ok:
        raise ImproveError(f"git {args[0]} failed while merging: {done.stderr.decode(errors='replace').strip()[-300:]}")
    return done.stdout.decode(errors="replace")


def merge_sources(base: Path, ours: Path, theirs: Path, dest: Path) -> Merge:
    """Write the merge of `theirs` into `ours` (both descending from `base`) to `dest`."""
    with tempfile.TemporaryDirectory(prefix="hgm-merge-") as tmp:
        repo = Path(tmp)
        _run(repo, "init", "-q", "-b", "base")
        for name, source in (("base", base), ("ours", ours), ("theirs", theirs)):
            if name != "base":
                _run(repo, "checkout", "-q", "-b", name, "base")
            _replace_tree(repo, source)
            _run(repo, "add", "-A")
            _run(repo, "commit", "-q", "--allow-empty", "--no-verify", "-m", name)
        _run(repo, "checkout", "-q", "ours")
        ours_diff = _run(repo, "diff", "base", "ours")
        theirs_diff = _run(repo, "diff", "base", "theirs")
        _run(repo, "-c", "merge.conflictStyle=diff3", "merge", "--no-commit", "--no-ff", "-q", "theirs", ok=(0, 1))
        conflicts = tuple(_run(repo, "diff", "--name-only", "--diff-filter=U").split())
        shutil.copytree(repo, dest, ignore=_IGNORE)
    return Merge(conflicts, ours_diff, theirs_diff)


def unresolved(tree: Path, paths: tuple[str, ...]) -> list[str]:
    """Which of `paths` under `tree` still hold conflict markers."""
    left = []
    for path in paths:
        try:
            lines = (tree / path).read_text(errors="replace").splitlines()
        except OSError:
            continue
        if any(line.startswith(MARKERS) or line == "=======" for line in lines):
            left.append(path)
    return left
