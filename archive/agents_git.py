"""agents.git: a bare git repository holding one branch per agent version.

Version `N` lives on branch `node/N`; its commit's parent is the commit of the parent
version, so `git --git-dir agents.git diff node/3 node/7` shows what evolution changed.
Directory trees go in and out through a throw-away index (no work tree is kept), and
byte-code caches are ignored through the repository's `info/exclude`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import git

from archive.errors import GitStoreError

GIT_DIR_NAME = "agents.git"
EXCLUDES = ("__pycache__/", "*.pyc", "*.pyo", ".pytest_cache/", ".mypy_cache/", ".ruff_cache/")
IDENTITY = {
    "GIT_AUTHOR_NAME": "hgm",
    "GIT_AUTHOR_EMAIL": "hgm@localhost",
    "GIT_COMMITTER_NAME": "hgm",
    "GIT_COMMITTER_EMAIL": "hgm@localhost",
}
BRANCH_PREFIX = "refs/heads/node/"


@contextlib.contextmanager
def _git_errors(what: str, git_dir: Path) -> Iterator[None]:
    """Turn a failed git command into a one-line GitStoreError."""
    try:
        yield
    except git.GitCommandError as exc:
        lines = [ln.strip() for ln in str(exc.stderr or "").splitlines() if ln.strip()]
        detail = lines[-1].removeprefix("stderr: ").strip("'") if lines else f"exit {exc.status}"
        raise GitStoreError(f"git could not {what} ({detail}); check {git_dir}") from exc


def branch(node_id: int) -> str:
    """The full ref name of a version's branch."""
    return f"{BRANCH_PREFIX}{node_id}"


class AgentStore:
    """The git store of agent versions of one run."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = Path(git_dir)
        try:
            self.repo = git.Repo(self.git_dir)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise GitStoreError(f"{self.git_dir} is not a git repository; restore it from a backup") from exc

    @classmethod
    def init(cls, git_dir: Path) -> "AgentStore":
        """Create an empty bare repository at `git_dir`."""
        git.Repo.init(git_dir, bare=True, mkdir=True)
        (git_dir / "info").mkdir(exist_ok=True)
        (git_dir / "info" / "exclude").write_text("\n".join(EXCLUDES) + "\n")
        return cls(git_dir)

    def _env(self, **extra: str) -> dict[str, str]:
        return {**IDENTITY, "GIT_DIR": str(self.git_dir.resolve()), **extra}

    def add_version(
        self, node_id: int, tree_dir: Path, parent_commit: str | list[str] | None, message: str
    ) -> str:
        """Commit the files under `tree_dir` on branch node/<node_id>; return the commit sha.

        Several parent commits (a recombined version) make a merge commit.
        """
        tree_dir = Path(tree_dir).resolve()
        if not tree_dir.is_dir():
            raise FileNotFoundError(f"agent directory {tree_dir} does not exist")
        with _git_errors(f"commit {tree_dir} as node {node_id}", self.git_dir):
            with tempfile.TemporaryDirectory(prefix="hgm-index-") as tmp:
                env = self._env(GIT_WORK_TREE=str(tree_dir), GIT_INDEX_FILE=os.path.join(tmp, "index"))
                worker = git.Git(str(tree_dir))
                worker.add("--all", env=env)
                tree = worker.write_tree(env=env)
                commits = [parent_commit] if isinstance(parent_commit, str) else list(parent_commit or [])
                parents = [arg for c in commits for arg in ("-p", c)]
                commit = worker.commit_tree(tree, *parents, "-m", message, env=env)
            self.repo.git.update_ref(branch(node_id), commit)
        return commit

    def commit_of(self, node_id: int) -> str:
        """The commit sha of a version's branch."""
        with _git_errors(f"find branch node/{node_id}", self.git_dir):
            return self.repo.git.rev_parse("--verify", branch(node_id))

    def node_ids(self) -> list[int]:
        """Ids of every node/<id> branch in the store."""
        with _git_errors("list branches", self.git_dir):
            out = self.repo.git.for_each_ref("--format=%(refname)", BRANCH_PREFIX.rstrip("/"))
        ids = []
        for ref in out.splitlines():
            tail = ref[len(BRANCH_PREFIX):]
            if tail.isdigit():
                ids.append(int(tail))
        return sorted(ids)

    def delete_branch(self, node_id: int) -> None:
        """Remove a version's branch (used to prune branches that have no DB row)."""
        with _git_errors(f"delete branch node/{node_id}", self.git_dir):
            self.repo.git.update_ref("-d", branch(node_id))

    def checkout(self, commit: str, dest: Path) -> None:
        """Write the files of `commit` into `dest` (created; must not exist or be empty)."""
        dest = Path(dest).resolve()
        if dest.exists() and any(dest.iterdir()):
            raise FileExistsError(f"{dest} is not empty")
        dest.mkdir(parents=True, exist_ok=True)
        with _git_errors(f"check out {commit[:12]}", self.git_dir):
            with tempfile.TemporaryDirectory(prefix="hgm-index-") as tmp:
                env = self._env(GIT_WORK_TREE=str(dest), GIT_INDEX_FILE=os.path.join(tmp, "index"))
                worker = git.Git(str(dest))
                worker.read_tree(commit, env=env)
                worker.checkout_index("--all", "--force", env=env)

    def diff(self, old_commit: str, new_commit: str) -> str:
        """Unified diff (binary-safe) from one version to another."""
        with _git_errors(f"diff {old_commit[:12]} {new_commit[:12]}", self.git_dir):
            return self.repo.git.diff(
                "--binary", "--no-color", "--no-ext-diff", old_commit, new_commit, strip_newline_in_stdout=False
            )

    def bundle(self, node_id: int, dest: Path) -> None:
        """Write a git bundle holding node/<id> and all its ancestors."""
        with _git_errors(f"bundle node/{node_id}", self.git_dir):
            self.repo.git.bundle("create", str(Path(dest).resolve()), branch(node_id))

    def close(self) -> None:
        """Stop gitpython's persistent helper processes."""
        self.repo.close()


