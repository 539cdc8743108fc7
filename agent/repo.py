"""Git plumbing: where an attempt starts, and the binary-safe diff of what it changed."""

from __future__ import annotations

import os
import subprocess
import tempfile

GIT = ("git", "-c", "safe.directory=*", "-c", "core.quotepath=off")
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
ALWAYS_EXCLUDED = (":(exclude,glob)**/__pycache__/**", ":(exclude,glob)**/*.pyc")


class GitError(RuntimeError):
    """A git command failed."""


def git(repo: str, *args: str, index: str | None = None) -> bytes:
    env = dict(os.environ, GIT_INDEX_FILE=index) if index else None
    try:
        done = subprocess.run([*GIT, *args], cwd=repo, env=env, capture_output=True, stdin=subprocess.DEVNULL)
    except OSError as err:
        raise GitError(f"cannot run git: {err}") from err
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def toplevel(path: str) -> str:
    """Return the root of the git work tree holding `path`; GitError if there is none."""
    return git(path, "rev-parse", "--show-toplevel").decode(errors="surrogateescape").strip()


def start_point(top: str) -> str:
    """Return the commit checked out now (the empty tree in a repository without commits)."""
    try:
        return git(top, "rev-parse", "--verify", "HEAD^{commit}").decode().strip()
    except GitError:
        return EMPTY_TREE


def diff_since(top: str, start: str, exclude: tuple[str, ...] = ()) -> bytes:
    """Return `git diff --binary` from `start` to the current work tree, untracked files included.

    A throwaway index keeps the repository's own index untouched; files in .gitignore,
    __pycache__ folders and the `exclude` paths (relative to `top`) are left out.
    """
    with tempfile.TemporaryDirectory(prefix="agent-diff-") as tmp:
        index = os.path.join(tmp, "index")
        git(top, "read-tree", start, index=index)
        excludes = [*ALWAYS_EXCLUDED, *(f":(exclude,literal){path}" for path in exclude)]
        git(top, "add", "-A", "--", ".", *excludes, index=index)
        tree = git(top, "write-tree", index=index).decode().strip()
    return git(top, "diff", "--binary", "--no-color", "--no-ext-diff", "--no-renames",
               "--src-prefix=a/", "--dst-prefix=b/", start, tree)
