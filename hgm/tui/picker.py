"""The run picker (`hgm tui` without a run): the runs under ./runs, newest first."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from hgm.tui import fmt
from hgm.tui.data import RunListing, list_runs
from hgm.tui.labels import STATUS_STYLE
from hgm.tui.panes import fit_footer
from hgm.tui.tables import VIM_TABLE_BINDINGS
from hgm.tui.workers import background


class RunTable(DataTable):
    BINDINGS = VIM_TABLE_BINDINGS + [Binding("enter", "select_cursor", "Open", tooltip="Open the run under the cursor")]


class PickerScreen(Screen[None]):
    """Choose a run: status, nodes, evaluations, best, age; enter opens it."""

    BINDINGS = [
        Binding("r", "reload", "Reload", tooltip="Read the runs folder again"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, runs_dir: Path) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        self.runs: list[RunListing] = []

    def compose(self) -> ComposeResult:
        yield Static(Text(f" runs in {self.runs_dir} ", style="bold reverse"), id="header")
        yield RunTable(cursor_type="row", zebra_stripes=True, id="runs")
        yield Static("", id="picker-note")
        yield Footer()

    def on_resize(self, event: events.Resize) -> None:
        fit_footer(self.query_one(Footer), event.size.width)

    def on_mount(self) -> None:
        table = self.query_one(RunTable)
        for name in ("run", "status", "nodes", "evals", "best", "age"):
            table.add_column(name, key=name)
        table.focus()
        self.action_reload()

    @background("read")
    def action_reload(self) -> None:
        runs = list_runs(self.runs_dir)
        self.app.call_from_thread(self._show, runs)

    def _show(self, runs: list[RunListing]) -> None:
        self.runs = runs
        table = self.query_one(RunTable)
        table.clear()
        now = self.app.clock()
        for r in runs:
            table.add_row(
                r.name,
                Text(r.status, style=STATUS_STYLE.get(r.status, "red")),
                Text(str(r.nodes), justify="right"),
                Text(str(r.evaluations), justify="right"),
                r.best if not r.error else Text(fmt.one_line(r.error, 60), style="red"),
                Text(fmt.age(r.updated or None, now), justify="right"),
                key=r.path,
            )
        note = "" if runs else f"no runs in {self.runs_dir}: start one with `hgm run`, or pass a run: `hgm tui RUN`"
        self.query_one("#picker-note", Static).update(Text(note, style="dim"))
        self.query_one("#picker-note", Static).display = bool(note)

    def action_open(self) -> None:
        table = self.query_one(RunTable)
        if not self.runs or not 0 <= table.cursor_row < len(self.runs):
            return
        listing = self.runs[table.cursor_row]
        if listing.error:
            self.notify(listing.error, severity="error")
            return
        self.app.open_run(Path(listing.path))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()
