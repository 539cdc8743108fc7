"""agents.git: versions as branches whose commits chain like the tree."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from archive.agents_git import AgentStore, branch
from tests.archive.helpers import make_agent


@pytest.fixture
def store(tmp_path: Path):
    s = AgentStore.init(tmp_path / "agents.git")
    yield s
    s.close()


def test_versions_chain_and_checkout_round_trip(store: AgentStore, tmp_path: Path) -> None:
    seed = make_agent(tmp_path / "seed")
    c0 = store.add_version(0, seed, None, "seed")
    (seed / "agent" / "main.py").write_text("print('v1')\n")
    (seed / "agent" / "new.py").write_text("x = 1\n")
    c1 = store.add_version(1, seed, c0, "child")
    assert store.node_ids() == [0, 1]
    assert store.commit_of(1) == c1
    commit = store.repo.commit(branch(1))
    assert [p.hexsha for p in commit.parents] == [c0]
    assert store.repo.is_ancestor(c0, c1)
    files = sorted(b.path for b in commit.tree.traverse() if b.type == "blob")
    assert files == ["agent/__init__.py", "agent/main.py", "agent/new.py", "run.sh"]  # no byte-code
    out = tmp_path / "out"
    store.checkout(c1, out)
    assert (out / "agent" / "main.py").read_text() == "print('v1')\n"
    assert (out / "run.sh").stat().st_mode & 0o111
    diff = store.diff(c0, c1)
    assert "+print('v1')" in diff and "agent/new.py" in diff
    with pytest.raises(FileExistsError):
        store.checkout(c1, out)


def test_bundle_clones_into_a_repo_with_history(store: AgentStore, tmp_path: Path) -> None:
    seed = make_agent(tmp_path / "seed")
    c0 = store.add_version(0, seed, None, "seed")
    (seed / "agent" / "main.py").write_text("print('v1')\n")
    c1 = store.add_version(1, seed, c0, "child")
    store.bundle(1, tmp_path / "b.bundle")
    clone = git.Repo.clone_from(str(tmp_path / "b.bundle"), tmp_path / "clone", branch="node/1")
    assert [c.hexsha for c in clone.iter_commits()] == [c1, c0]
    clone.close()


def test_delete_branch_and_missing_dir(store: AgentStore, tmp_path: Path) -> None:
    seed = make_agent(tmp_path / "seed")
    store.add_version(0, seed, None, "seed")
    store.add_version(5, seed, None, "orphan")
    store.delete_branch(5)
    assert store.node_ids() == [0]
    with pytest.raises(FileNotFoundError):
        store.add_version(6, tmp_path / "nope", None, "x")
