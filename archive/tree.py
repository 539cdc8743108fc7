"""A read-only, in-memory snapshot of a run's tree of agent versions.

Built from hgm.db in a few queries; read by the CLI, the TUI, the final choice and a
resumed run (which rebuilds its search state from it). Each node
keeps its own measured evaluations as a list of 0/1 in recording order (infra errors,
abandoned and contaminated attempts are not measurements and are left out), plus counts
of the evaluations whose patch touched test machinery and of contaminated ones.
A retired node (`status == "retired"`) takes its whole clade out of the search and of
the final choice; `retired_clades()` names every node that is out.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Iterator

from archive.schema import has_column


@dataclass(slots=True)
class Node:
    """One agent version."""

    id: int
    parent_id: int | None
    commit: str
    created: float
    status: str
    operator: str
    children: list[int] = field(default_factory=list)
    evals: list[int] = field(default_factory=list)
    machinery: int = 0  # evaluations whose patch touched test machinery (stripped, rejected or allowed)
    contaminated: int = 0  # evaluations where hidden test material showed up (not scored)
    second_parent_id: int | None = None  # recombine: the other parent (a link, not a tree edge)

    @property
    def successes(self) -> int:
        return sum(self.evals)

    @property
    def failures(self) -> int:
        return len(self.evals) - sum(self.evals)


@dataclass(frozen=True, slots=True)
class FailedExpansion:
    """An expansion attempt that produced no child."""

    id: int
    parent_id: int
    status: str
    reason: str


@dataclass(slots=True)
class Tree:
    """Nodes by id, plus the root and the failed expansion attempts."""

    nodes: dict[int, Node]
    root_id: int | None
    failed_expansions: list[FailedExpansion]

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, node_id: int) -> Node:
        return self.nodes[node_id]

    @property
    def n_evals(self) -> int:
        """Number of measured evaluations in the whole tree."""
        return sum(len(n.evals) for n in self.nodes.values())

    def preorder(self) -> Iterator[tuple[Node, int]]:
        """Depth-first walk from the root(s): (node, depth), children in id order."""
        roots = [n.id for n in self.nodes.values() if n.parent_id is None or n.parent_id not in self.nodes]
        stack = [(rid, 0) for rid in sorted(roots, reverse=True)]
        while stack:
            node_id, depth = stack.pop()
            node = self.nodes[node_id]
            yield node, depth
            stack.extend((child, depth + 1) for child in reversed(node.children))

    def retired_clades(self) -> set[int]:
        """Ids of retired nodes and all their descendants."""
        out: set[int] = set()
        for node, _ in self.preorder():  # parents before children
            if node.status == RETIRED or (node.parent_id is not None and node.parent_id in out):
                out.add(node.id)
        return out

    def clade_counts(self) -> dict[int, tuple[int, int]]:
        """(successes, failures) pooled over each node and all its descendants."""
        order = [node.id for node, _ in self.preorder()]
        totals: dict[int, tuple[int, int]] = {}
        for node_id in reversed(order):  # children before parents
            node = self.nodes[node_id]
            s, f = node.successes, node.failures
            for child in node.children:
                cs, cf = totals[child]
                s, f = s + cs, f + cf
            totals[node_id] = (s, f)
        return totals


RETIRED = "retired"  # archive.schema.RETIRED_NODE_STATUS
MACHINERY_FLAG = "machinery:"  # prefix of the evaluation flags saying test machinery was touched


def build_tree(conn: sqlite3.Connection, *, with_flags: bool = True) -> Tree:
    """Read nodes, measured evaluations, evaluation flags and failed expansions into a Tree.

    `with_flags=False` reads a database made before evaluations had flags.
    """
    nodes: dict[int, Node] = {}
    root_id = None
    second = "second_parent_id" if has_column(conn, "nodes", "second_parent_id") else "NULL"
    for node_id, parent_id, commit, created, status, operator, second_parent_id in conn.execute(
        f"SELECT id, parent_id, commit_sha, created, status, operator, {second} FROM nodes ORDER BY id"
    ):
        nodes[node_id] = Node(node_id, parent_id, commit, created, status, operator, second_parent_id=second_parent_id)
        if parent_id is None and root_id is None:
            root_id = node_id
    for node in nodes.values():
        if node.parent_id is not None and node.parent_id in nodes:
            nodes[node.parent_id].children.append(node.id)
    for node_id, utility in conn.execute(
        "SELECT node_id, utility FROM evaluations WHERE utility IS NOT NULL ORDER BY id"
    ):
        nodes[node_id].evals.append(utility)
    if with_flags:
        for node_id, machinery, contaminated in conn.execute(
            "SELECT node_id, SUM(flags LIKE ?), SUM(status = 'contaminated') FROM evaluations"
            " WHERE flags != '' OR status = 'contaminated' GROUP BY node_id",
            (f"%{MACHINERY_FLAG}%",),
        ):
            nodes[node_id].machinery, nodes[node_id].contaminated = int(machinery), int(contaminated)
    failed = [
        FailedExpansion(*row)
        for row in conn.execute(
            "SELECT id, parent_id, status, reason FROM expansions WHERE status != 'ok' ORDER BY id"
        )
    ]
    return Tree(nodes, root_id, failed)
