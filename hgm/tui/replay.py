"""Replay a run from its timeline: the tree as it stood after each thing that happened.

The timeline (`archive.Run.timeline`) is applied to an in-memory `archive.Tree` one item
at a time, forwards or backwards, so stepping is cheap whatever the run's size; each
position is turned into a snapshot by the same code as the live view.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from archive.tree import FailedExpansion, Node, Tree

from hgm.tui.data import RunHeader, TreeSnapshot, snapshot_from_tree

# timeline item fields (see archive.Run.timeline)
TIME, KIND, NODE, PARENT, TASK, STATUS, UTILITY, TEXT = range(8)


class Replay:
    """A position in a run's timeline; `seek` moves it, `snapshot` shows the tree there."""

    def __init__(self, items: list[tuple], config: dict[str, Any], header: RunHeader) -> None:
        self.items = items
        self.config = config
        self.header = header
        self.tree = Tree({}, None, [])
        self.position = 0  # items applied
        first_node = next((i for i, item in enumerate(items) if item[KIND] == "node"), len(items) - 1)
        self.start = min(len(items), first_node + 1)
        self.seek(self.start)

    @property
    def end(self) -> int:
        return len(self.items)

    def seek(self, position: int) -> None:
        """Move to just after item `position - 1` (clamped to the run's first node .. the end)."""
        position = max(self.start, min(self.end, position))
        while self.position < position:
            self._apply(self.items[self.position])
            self.position += 1
        while self.position > position:
            self.position -= 1
            self._undo(self.items[self.position])

    def step(self, delta: int) -> None:
        self.seek(self.position + delta)

    def describe(self) -> str:
        """What the last applied item was, in a few words."""
        if self.position == 0:
            return "start"
        item = self.items[self.position - 1]
        kind = item[KIND]
        if kind == "node":
            what = f"node {item[NODE]} added" + ("" if item[PARENT] is None else f" (child of {item[PARENT]})")
        elif kind == "evaluation":
            what = f"node {item[NODE]} on {item[TASK]}: {item[STATUS]}"
        elif kind == "expansion":
            what = f"expansion of node {item[NODE]} {item[STATUS]}"
        else:
            what = f"event {item[TEXT]}"
        return what

    def snapshot(self) -> TreeSnapshot:
        note = f"{self.position}/{self.end} {self.describe()}"
        header = dataclasses.replace(self.header, status="replay", live=False, note=note)
        return snapshot_from_tree(self.tree, self.config, header)

    # ----- applying items ------------------------------------------------------------

    def _apply(self, item: tuple) -> None:
        kind, nodes = item[KIND], self.tree.nodes
        if kind == "node":
            node_id, parent = item[NODE], item[PARENT]
            nodes[node_id] = Node(node_id, parent, "", item[TIME], item[STATUS] or "active", item[TEXT] or "")
            if parent in nodes:
                nodes[parent].children.append(node_id)
            if self.tree.root_id is None and parent is None:
                self.tree.root_id = node_id
        elif kind == "evaluation" and item[UTILITY] is not None and item[NODE] in nodes:
            nodes[item[NODE]].evals.append(item[UTILITY])
        elif kind == "expansion":
            self.tree.failed_expansions.append(FailedExpansion(-1, item[NODE], item[STATUS], item[TEXT] or ""))

    def _undo(self, item: tuple) -> None:
        kind, nodes = item[KIND], self.tree.nodes
        if kind == "node":
            node = nodes.pop(item[NODE], None)
            if node is not None and node.parent_id in nodes:
                nodes[node.parent_id].children.remove(node.id)
            if self.tree.root_id == item[NODE]:
                self.tree.root_id = None
        elif kind == "evaluation" and item[UTILITY] is not None and item[NODE] in nodes:
            nodes[item[NODE]].evals.pop()
        elif kind == "expansion":
            self.tree.failed_expansions.pop()
