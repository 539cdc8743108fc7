"""The tree of agent versions: a Textual `Tree` that loads each level when it is opened.

Only expanded versions have their children as widgets, so a 10,000-node run opens as
fast as a small one. A new snapshot (follow mode, replay) is merged into the widgets in
place: labels change, new children appear, the cursor stays on its version and the
visible rows stay where they were on screen.
"""

from __future__ import annotations

from typing import Iterable

from textual.binding import Binding
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from hgm.tui.data import NodeRow, TreeSnapshot
from hgm.tui.labels import node_label

MAX_AUTO_EXPAND = 2000  # a filter opens at most this many versions at once

VIM_TREE_BINDINGS = [
    Binding("j,down", "cursor_down", "Down", show=False),
    Binding("k,up", "cursor_up", "Up", show=False),
    Binding("enter", "select_cursor", "Open / close", show=False),
    Binding("g,home", "scroll_home", "Top", show=False),
    Binding("G,end", "scroll_end", "Bottom", show=False),
    Binding("l,right", "open_node", "Open", show=False),
    Binding("h,left", "close_node", "Close / parent", show=False),
]


class AgentTree(Tree[int]):
    """Versions of a run; `data` of each widget node is the version id."""

    BINDINGS = VIM_TREE_BINDINGS

    def __init__(self, **kwargs) -> None:
        super().__init__("…", **kwargs)
        self.guide_depth = 2
        self.auto_expand = True  # enter opens or closes a version
        self.snapshot: TreeSnapshot | None = None
        self.by_clade = False
        self.shown_ids: set[int] | None = None  # None: every version; else a filter's versions + ancestors
        self._loaded: set[int] = set()
        self._want_open: set[int] = set()  # opened by the user (or at start): reopen after a rebuild,
        # and open as soon as a first child arrives
        self._widgets: dict[int, TreeNode[int]] = {}
        self._rows: dict[int, NodeRow] = {}

    # ----- public --------------------------------------------------------------------

    @property
    def cursor_id(self) -> int | None:
        node = self.cursor_node
        return None if node is None else node.data

    def show(self, snapshot: TreeSnapshot) -> None:
        """Show a new snapshot, keeping what is open, the cursor and the scroll position."""
        first = self.snapshot is None or self.root.data != snapshot.root_id
        self.snapshot = snapshot
        if first:
            self._rebuild(expanded={snapshot.root_id} if snapshot.root_id is not None else set())
            return
        self._keep_view(lambda: self._sync(self.root))

    def set_order(self, by_clade: bool) -> None:
        """Children by id, or best clade estimate first."""
        self.by_clade = by_clade
        self._keep_view(lambda: self._rebuild(self._expanded_ids()))

    def set_visible(self, ids: Iterable[int] | None) -> int:
        """Show only `ids` and their ancestors, all opened (None: show everything). Returns how many."""
        assert self.snapshot is not None
        if ids is None:
            self.shown_ids = None
            self._keep_view(lambda: self._rebuild(self._expanded_ids()))
            return len(self.snapshot.nodes)
        self.shown_ids = self.snapshot.with_ancestors(ids)
        opened = set(sorted(self.shown_ids)[:MAX_AUTO_EXPAND])
        self._keep_view(lambda: self._rebuild(opened))
        return len(self.shown_ids)

    def open_to(self, node_id: int) -> TreeNode[int] | None:
        """Open the ancestors of `node_id` (loading their children); its widget, if shown."""
        if self.snapshot is None or node_id not in self.snapshot.nodes:
            return None
        if self.shown_ids is not None and node_id not in self.shown_ids:
            return None
        for ancestor in self.snapshot.lineage(node_id)[:-1]:
            widget = self._widgets.get(ancestor)
            if widget is None:
                return None
            self._populate(widget)
            if not widget.is_expanded:
                widget.expand()
        return self._widgets.get(node_id)

    def reveal(self, node_id: int) -> bool:
        """Open the ancestors of `node_id` and put the cursor on it."""
        widget = self.open_to(node_id)
        if widget is None:
            return False
        self.call_after_refresh(self._move_to, widget)
        return True

    def widget_of(self, node_id: int) -> TreeNode[int] | None:
        return self._widgets.get(node_id)

    # ----- actions -------------------------------------------------------------------

    def action_open_node(self) -> None:
        node = self.cursor_node
        if node is not None and node.allow_expand and not node.is_expanded:
            self._toggle_node(node)

    def _toggle_node(self, node: TreeNode[int]) -> None:
        # children are added before the node opens, so a key pressed right after sees them
        if node.allow_expand and not node.is_expanded:
            self._populate(node)
        super()._toggle_node(node)

    def action_close_node(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.is_expanded:
            node.collapse()
        elif node.parent is not None:
            self.move_cursor(node.parent)

    def _on_tree_node_expanded(self, event: Tree.NodeExpanded[int]) -> None:
        self._want_open.add(event.node.data)
        self._populate(event.node)

    def _on_tree_node_collapsed(self, event: Tree.NodeCollapsed[int]) -> None:
        self._want_open.discard(event.node.data)

    # ----- building ------------------------------------------------------------------

    def _move_to(self, widget: TreeNode[int]) -> None:
        self.move_cursor(widget)
        self.scroll_to_node(widget, animate=False)

    def _children(self, node_id: int) -> list[int]:
        assert self.snapshot is not None
        kids = self.snapshot.children(node_id, self.by_clade)
        return kids if self.shown_ids is None else [k for k in kids if k in self.shown_ids]

    def _label(self, row: NodeRow):
        self._rows[row.id] = row
        return node_label(row)

    def _add(self, parent: TreeNode[int], node_id: int) -> TreeNode[int]:
        assert self.snapshot is not None
        row = self.snapshot.nodes[node_id]
        widget = parent.add(self._label(row), data=node_id, allow_expand=bool(self._children(node_id)))
        self._widgets[node_id] = widget
        return widget

    def _populate(self, widget: TreeNode[int]) -> None:
        """Add the children of an opened version (once)."""
        node_id = widget.data
        if node_id is None or node_id in self._loaded or self.snapshot is None:
            return
        self._loaded.add(node_id)
        for child in self._children(node_id):
            self._add(widget, child)

    def _expanded_ids(self) -> set[int]:
        return {i for i, w in self._widgets.items() if w.is_expanded} | self._want_open

    def _rebuild(self, expanded: set[int]) -> None:
        """Recreate every widget from the snapshot, opening the versions in `expanded`."""
        snap = self.snapshot
        assert snap is not None
        cursor = self.cursor_id
        self.clear()
        self._want_open = set(expanded)
        self._loaded.clear()
        self._widgets.clear()
        self._rows.clear()
        if snap.root_id is None:
            self.root.set_label("(empty run)")
            return
        root = snap.nodes[snap.root_id]
        self.root.data = root.id
        self.root.set_label(self._label(root))
        self.root.allow_expand = bool(self._children(root.id))
        self._widgets[root.id] = self.root
        self._open(self.root, expanded)
        target = self._widgets.get(cursor) if cursor is not None else None
        self.call_after_refresh(self._move_to, target or self.root)

    def _open(self, widget: TreeNode[int], expanded: set[int]) -> None:
        stack = [widget]
        while stack:
            current = stack.pop()
            if current.data not in expanded:
                continue
            self._populate(current)  # even without children yet: those that come will show
            if current.allow_expand:
                current.expand()
            stack.extend(current.children)
        self._invalidate()

    def _sync(self, widget: TreeNode[int]) -> None:
        """Merge the current snapshot into the widgets under `widget` (labels and children)."""
        snap = self.snapshot
        assert snap is not None
        stack = [widget]
        while stack:
            current = stack.pop()
            node_id = current.data
            row = snap.nodes.get(node_id)
            if row is None:  # gone (replaying backwards): rebuild its parent's children
                continue
            if self._rows.get(node_id) != row:
                current.set_label(self._label(row))
            wanted = self._children(node_id)
            current.allow_expand = bool(wanted)
            if node_id not in self._loaded:
                continue
            have = [c.data for c in current.children]
            if have != wanted:
                if have == wanted[: len(have)]:
                    for child in wanted[len(have):]:
                        self._add(current, child)
                    if node_id in self._want_open and not current.is_expanded:
                        current.expand()  # its first children arrived
                else:
                    expanded = self._expanded_ids()
                    for child in list(current.children):
                        self._forget(child)
                    current.remove_children()
                    for child in wanted:
                        self._open(self._add(current, child), expanded)
            stack.extend(current.children)
        self._invalidate()

    def _forget(self, widget: TreeNode[int]) -> None:
        stack = [widget]
        while stack:
            current = stack.pop()
            self._widgets.pop(current.data, None)
            self._loaded.discard(current.data)
            self._rows.pop(current.data, None)
            stack.extend(current.children)

    def _keep_view(self, change) -> None:
        """Apply `change` so that the cursor's version stays on the same screen row."""
        before = self.cursor_line
        offset = before - self.scroll_offset.y
        cursor = self.cursor_node
        change()
        if cursor is None or cursor.data not in self._widgets:
            return

        def restore() -> None:
            widget = self._widgets.get(cursor.data)
            if widget is None:
                return
            self._tree_lines  # noqa: B018 - builds the lines so the widget's line is known
            line = widget.line
            if line < 0:
                return
            self.cursor_line = line
            self.scroll_to(y=max(0, line - offset), animate=False)

        restore()
        self.call_after_refresh(restore)
