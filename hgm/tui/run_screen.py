"""The main view of one run: the tree on the left, the selected version's tabs on the right.

Follow mode polls the archive (a cheap `PRAGMA data_version`) and, when something was
committed, rebuilds the snapshot in a worker thread and merges it into the view. Replay
steps through the run's timeline instead.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane, Tabs, Tree

from hgm.tui.data import RunData, TreeSnapshot
from hgm.tui.dialogs import CompareScreen, ExportScreen, HelpScreen
from hgm.tui.labels import header_text
from hgm.tui.panes import DiffPane, SummaryPane, fit_footer
from hgm.tui.replay import Replay
from hgm.tui.tables import CallTable, EvalTable, PagedTable
from hgm.tui.trajectory import TrajectoryScreen
from hgm.tui.tree_view import AgentTree
from hgm.tui.workers import background

TABS = ("summary", "diff", "evals", "calls")
SELECT_DELAY_S = 0.12  # wait for the cursor to settle before reading a version's details
REPLAY_TICK_S = 0.25
REPLAY_SECONDS = 60  # a played replay takes about this long, whatever the run's size
REFRESH_BACKOFF = 4  # follow mode spends at most about 1/4 of the time rebuilding snapshots


class RunScreen(Screen[None]):
    """Browse one run; follow it while it is written; replay how it grew."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", key_display="/",
                tooltip="Show only versions whose id, operator, status, lesson or diagnosis contains a text"),
        Binding("b", "lineage", "Lineage", tooltip="Show only the shipped version's lineage (again: every version)"),
        Binding("s", "sort", "Sort", tooltip="Children by clade estimate, best first (again: by id)"),
        Binding("d", "compare", "Diff", tooltip="Diff the selected version against another version you pick"),
        Binding("e", "export", "Export", tooltip="Export the selected version like `hgm export` (dir, patch, bundle)"),
        Binding("c", "copy_id", "Copy", tooltip="Copy the selected version's id to the clipboard"),
        Binding("f", "toggle_follow", "Follow", tooltip="Refresh on its own while the run is written (on/off)"),
        Binding("r", "replay", "Replay", tooltip="Step through the run's timeline from the root (again: back to now)"),
        Binding("p", "replay_play", "Play", tooltip="Replay: play or pause"),
        Binding("full_stop", "replay_step(1)", "Next", key_display=".", show=False, tooltip="Replay: one step forward"),
        Binding("comma", "replay_step(-1)", "Prev", key_display=",", show=False, tooltip="Replay: one step back"),
        Binding("question_mark", "help", "Help", key_display="?", tooltip="Every key and what it does"),
        Binding("q", "app.quit", "Quit"),
        Binding("1", "tab('summary')", "Summary tab", show=False),
        Binding("2", "tab('diff')", "Diff tab", show=False),
        Binding("3", "tab('evals')", "Evaluations tab", show=False),
        Binding("4", "tab('calls')", "Model calls tab", show=False),
        Binding("escape", "back", "Back", show=False,
                tooltip="Close the filter, end a replay, or go back to the run picker"),
    ]

    follow: reactive[bool] = reactive(False)

    def __init__(self, data: RunData, *, follow: bool | None = None, poll_s: float = 1.0,
                 export_dir: Path = Path("exports")) -> None:
        super().__init__()
        self.data = data
        self.follow_choice = follow
        self.poll_s = poll_s
        self.export_dir = export_dir
        self.snapshot: TreeSnapshot | None = None
        self.selected: int | None = None
        self.compare_with: int | None = None
        self.filter_text = ""
        self.lineage_only = False
        self.replay: Replay | None = None
        self._replay_timer: Timer | None = None
        self._select_timer: Timer | None = None
        self._diff_for: tuple[int | None, int] | None = None
        self._polling = False
        self._next_refresh = 0.0
        self.ready = False  # the first snapshot is on screen

    # ----- layout --------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(Text(f" {self.data.name} ", style="bold reverse") + Text("  reading the run…"), id="header")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield Input(placeholder="filter: id, operator, lesson, diagnosis (enter; esc clears)", id="filter")
                yield AgentTree(id="tree")
            with TabbedContent(id="tabs", initial="summary"):
                with TabPane("Summary", id="summary"):
                    yield SummaryPane(id="summary-pane")
                with TabPane("Diff", id="diff"):
                    yield DiffPane(id="diff-pane")
                with TabPane("Evaluations", id="evals"):
                    yield Static("", id="evals-caption", classes="caption")
                    yield EvalTable(self.data, id="evals-table")
                with TabPane("Model calls", id="calls"):
                    yield Static("", id="calls-caption", classes="caption")
                    yield CallTable(self.data, id="calls-table")
        yield Footer()

    @property
    def agent_tree(self) -> AgentTree:
        return self.query_one(AgentTree)

    def on_resize(self, event: events.Resize) -> None:
        fit_footer(self.query_one(Footer), event.size.width)

    def on_mount(self) -> None:
        self.query_one(Tabs).can_focus = False  # 1-4 switch tabs; tab moves between the tree and a tab's content
        self.agent_tree.focus()
        self._load_first()
        self.set_interval(self.poll_s, self._poll)

    # ----- snapshots -----------------------------------------------------------------

    @background("snapshot")
    def _load_first(self) -> None:
        self.data.changed()  # remember the database version this snapshot reads
        snap = self.data.snapshot()
        self.app.call_from_thread(self._first_snapshot, snap)

    def _first_snapshot(self, snap: TreeSnapshot) -> None:
        self.follow = snap.header.live if self.follow_choice is None else self.follow_choice
        self._show_snapshot(snap)
        self.ready = True
        if snap.root_id is not None:
            self._select(snap.root_id)

    def _show_snapshot(self, snap: TreeSnapshot) -> None:
        self.snapshot = snap
        self.agent_tree.show(snap)
        self._paint_header()

    def _paint_header(self) -> None:
        if self.snapshot is not None:
            self.query_one("#header", Static).update(header_text(self.snapshot.header, self.follow and not self.replay))

    def watch_follow(self, follow: bool) -> None:
        self._paint_header()

    def _poll(self) -> None:
        if not (self.follow and self.replay is None and self.ready and not self._polling):
            return
        if time.monotonic() < self._next_refresh:
            return
        self._polling = True
        self._refresh_worker(self.filter_text, self.lineage_only)

    @background("snapshot")
    def _refresh_worker(self, filter_text: str, lineage: bool) -> None:
        try:
            if not self.data.changed():
                return
            started = time.monotonic()
            snap = self.data.snapshot()
            found = self.data.find(filter_text) if filter_text else None
            # a big tree takes a while to score: refresh it less often, so the UI keeps the CPU
            self._next_refresh = time.monotonic() + REFRESH_BACKOFF * (time.monotonic() - started)
            self.app.call_from_thread(self._followed, snap, found, lineage)
        except Exception as exc:  # noqa: BLE001 - one notice, then stop polling a run that cannot be read
            self.app.call_from_thread(self._follow_failed, exc)
        finally:
            self._polling = False

    def _follow_failed(self, exc: Exception) -> None:
        self.follow = False
        self.notify(f"follow stopped, the run cannot be read: {exc} (f tries again)", severity="error", timeout=10)

    def _followed(self, snap: TreeSnapshot, found: list[int] | None, lineage: bool) -> None:
        if self.replay is not None:
            return
        old = self.snapshot
        self.snapshot = snap
        if found is not None:
            self.agent_tree.snapshot = snap
            self.agent_tree.shown_ids = snap.with_ancestors(found)
        elif lineage and snap.header.shipped is not None:
            self.agent_tree.snapshot = snap
            self.agent_tree.shown_ids = set(snap.lineage(snap.header.shipped))
        self.agent_tree.show(snap)
        self._paint_header()
        node = self.selected
        if node is None or node not in snap.nodes:
            return
        if old is None or old.nodes.get(node) != snap.nodes[node]:
            self._load_summary(node)
        for table in self.query(PagedTable):
            table.refresh_tail()

    # ----- selection -----------------------------------------------------------------

    @on(Tree.NodeHighlighted)
    def _highlighted(self, event: Tree.NodeHighlighted) -> None:
        node_id = event.node.data
        if node_id is None or node_id == self.selected:
            return
        if self._select_timer is not None:
            self._select_timer.stop()
        self._select_timer = self.set_timer(SELECT_DELAY_S, lambda: self._select(node_id))

    def _select(self, node_id: int) -> None:
        """Show `node_id` in the tabs (summary now, the diff when its tab is open)."""
        if self.snapshot is None or node_id not in self.snapshot.nodes:
            return
        changed = node_id != self.selected
        self.selected = node_id
        if changed:
            self.compare_with = None
        self._load_summary(node_id)
        if changed or self.query_one("#evals-table", EvalTable).node_id is None:
            self.query_one("#evals-table", EvalTable).show_node(node_id)
            self.query_one("#calls-table", CallTable).show_node(node_id)
        self._update_captions()
        if self.query_one(TabbedContent).active == "diff":
            self._load_diff()

    @background("summary")
    def _load_summary(self, node_id: int) -> None:
        snap = self.snapshot
        row = snap.nodes.get(node_id) if snap else None
        try:
            detail = self.data.detail(node_id, row)
        except Exception as exc:  # noqa: BLE001 - e.g. a version only known to a replay
            self.app.call_from_thread(self.notify, f"cannot read version {node_id}: {exc}", severity="warning")
            return
        self.app.call_from_thread(self._show_summary, node_id, detail)

    def _show_summary(self, node_id: int, detail: Any) -> None:
        if node_id == self.selected:
            self.query_one(SummaryPane).show(detail)

    def _load_diff(self) -> None:
        if self.selected is None or self.snapshot is None:
            return
        row = self.snapshot.nodes[self.selected]
        old = self.compare_with if self.compare_with is not None else row.parent_id
        key = (old, self.selected)
        if key == self._diff_for:
            return
        self._diff_for = key
        pane = self.query_one(DiffPane)
        if old is None:
            pane.show_message(f"version {self.selected}", "the seed agent has no parent to diff against (d: pick a version)")
            return
        pane.show_message(f"version {old} → {self.selected}", "computing the diff…")
        self._diff_worker(old, self.selected)

    @background("diff")
    def _diff_worker(self, old: int, new: int) -> None:
        try:
            diff = self.data.diff(old, new)
        except Exception as exc:  # noqa: BLE001 - a broken git store is shown, not fatal
            self.app.call_from_thread(self.query_one(DiffPane).show_message, f"version {old} → {new}", str(exc))
            return
        relation = "parent" if self.snapshot and self.snapshot.nodes[new].parent_id == old else "picked"
        self.app.call_from_thread(self._show_diff, old, new, f"version {old} ({relation}) → {new}", diff)

    def _show_diff(self, old: int, new: int, title: str, diff: str) -> None:
        if self._diff_for == (old, new):
            self.query_one(DiffPane).show(title, diff)

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "diff":
            self._load_diff()

    @on(PagedTable.Loaded)
    def _update_captions(self, event: Any = None) -> None:
        evals = self.query_one("#evals-table", EvalTable)
        calls = self.query_one("#calls-table", CallTable)
        self.query_one("#evals-caption", Static).update(
            Text(evals.caption("evaluations (enter: trajectory)"), style="dim"))
        self.query_one("#calls-caption", Static).update(Text(calls.caption("model calls"), style="dim"))

    @on(DataTable.RowSelected, "#evals-table")
    def _open_trajectory(self, event: DataTable.RowSelected) -> None:
        table = self.query_one("#evals-table", EvalTable)
        row = table.items[event.cursor_row] if 0 <= event.cursor_row < len(table.items) else None
        if row is not None and self.selected is not None:
            self.app.push_screen(TrajectoryScreen(self.data, row, self.selected))

    # ----- actions -------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("replay_play", "replay_step"):
            return self.replay is not None
        if action == "toggle_follow":
            return self.replay is None  # a replay shows the past: nothing to follow
        return True

    def action_tab(self, name: str) -> None:
        self.query_one(TabbedContent).active = name

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("visible")
        box.focus()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.filter_text = event.value.strip()
        self.lineage_only = False
        if not self.filter_text:
            self._clear_filter()
            return
        self._find(self.filter_text)

    @background("find")
    def _find(self, text: str) -> None:
        found = self.data.find(text)
        self.app.call_from_thread(self._filtered, text, found)

    def _filtered(self, text: str, found: list[int]) -> None:
        if text != self.filter_text:
            return
        shown = self.agent_tree.set_visible(found)
        self.agent_tree.focus()
        self.notify(f"{len(found)} version(s) match {text!r} ({shown} shown with their ancestors)")
        if found:
            self.agent_tree.reveal(found[0])

    def _clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("visible")
        self.filter_text = ""
        self.lineage_only = False
        if self.agent_tree.shown_ids is not None:
            self.agent_tree.set_visible(None)
            if self.selected is not None:
                self.agent_tree.reveal(self.selected)
        self.agent_tree.focus()

    def action_back(self) -> None:
        if self.replay is not None:
            self.action_replay()
        elif self.filter_text or self.lineage_only or self.query_one("#filter", Input).has_class("visible"):
            self._clear_filter()
        elif len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    def action_lineage(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        if self.lineage_only:
            self._clear_filter()
            return
        if snap.header.shipped is None:
            self.notify("no version has been evaluated yet: nothing is shipped", severity="warning")
            return
        self.filter_text = ""
        self.lineage_only = True
        self.agent_tree.set_visible([snap.header.shipped])
        self.agent_tree.reveal(snap.header.shipped)
        self.notify(f"lineage of the shipped version {snap.header.shipped} (b again: every version)")

    def action_sort(self) -> None:
        self.agent_tree.set_order(not self.agent_tree.by_clade)
        self.notify("children: best clade estimate first" if self.agent_tree.by_clade else "children: by id")

    def action_compare(self) -> None:
        if self.snapshot is None or self.selected is None:
            return

        def chosen(other: int | None) -> None:
            if other is None:
                return
            self.compare_with = other
            self._diff_for = None
            self.action_tab("diff")
            self._load_diff()

        self.app.push_screen(CompareScreen(self.snapshot, self.selected), chosen)

    def action_export(self) -> None:
        node = self.selected
        if node is None:
            return
        default = self.export_dir / f"{self.data.name}-node{node}"

        def chosen(choice: tuple[Path, str] | None) -> None:
            if choice is not None:
                self._export(node, *choice)

        self.app.push_screen(ExportScreen(node, default), chosen)

    @background("export")
    def _export(self, node: int, dest: Path, fmt_name: str) -> None:
        try:
            written = self.data.export(node, dest, fmt_name)
        except Exception as exc:  # noqa: BLE001 - shown to the user, like `hgm export` does
            self.app.call_from_thread(self.notify, f"export failed: {exc}", severity="error", timeout=8)
            return
        self.app.call_from_thread(self.notify, f"exported node {node} as {fmt_name} to {written}", timeout=8)

    def action_copy_id(self) -> None:
        if self.selected is not None:
            self.app.copy_to_clipboard(str(self.selected))
            self.notify(f"copied version id {self.selected}")

    def action_toggle_follow(self) -> None:
        if self.replay is not None:
            self.notify("end the replay first (r)", severity="warning")
            return
        self.follow = not self.follow
        self.notify("following the run" if self.follow else "follow off: the view stays as it is")
        if self.follow:
            self._poll()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.app.binding_help(self)))

    # ----- replay --------------------------------------------------------------------

    def action_replay(self) -> None:
        if self.replay is not None:
            self._stop_replay()
            return
        self._start_replay()

    @background("snapshot")
    def _start_replay(self) -> None:
        items = self.data.timeline()
        header = self.data.header()
        replay = Replay(items, self.data.config, header)
        self.app.call_from_thread(self._replay_ready, replay)

    def _replay_ready(self, replay: Replay) -> None:
        self.replay = replay
        self._show_replay()
        self.agent_tree.move_cursor(self.agent_tree.root)
        self.refresh_bindings()
        self.notify("replay: p plays or pauses, . and , step, r or esc ends it")

    def _show_replay(self) -> None:
        assert self.replay is not None
        snap = self.replay.snapshot()
        self._show_snapshot(snap)
        item = self.replay.items[self.replay.position - 1] if self.replay.position else None
        if item is not None and item[1] == "node":
            self.agent_tree.open_to(item[2])

    def action_replay_step(self, delta: int) -> None:
        if self.replay is None:
            return
        self.replay.step(delta)
        self._show_replay()

    def action_replay_play(self) -> None:
        if self.replay is None:
            return
        if self._replay_timer is not None:
            self._replay_timer.stop()
            self._replay_timer = None
            return
        stride = max(1, (self.replay.end - self.replay.start) // int(REPLAY_SECONDS / REPLAY_TICK_S))
        if self.replay.position >= self.replay.end:
            self.replay.seek(self.replay.start)

        def tick() -> None:
            if self.replay is None:
                return
            self.replay.step(stride)
            self._show_replay()
            if self.replay.position >= self.replay.end and self._replay_timer is not None:
                self._replay_timer.stop()
                self._replay_timer = None

        self._replay_timer = self.set_interval(REPLAY_TICK_S, tick)

    def _stop_replay(self) -> None:
        if self._replay_timer is not None:
            self._replay_timer.stop()
            self._replay_timer = None
        self.replay = None
        self.refresh_bindings()
        self.data.changed()
        self._show_snapshot(self.data.snapshot())
        self.notify("replay ended: back to the run as it is now")
