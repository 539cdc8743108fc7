"""Tables of one version's evaluations and model calls, read a page at a time.

A table asks the data layer for its first page when a version is selected and for the
next page when the cursor nears the last loaded row, so a version with thousands of
rows opens at once and the run's whole evaluation table is never read.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from hgm.tui import fmt
from hgm.tui.data import CallRow, EvalRow, RunData
from hgm.tui.workers import background

T = TypeVar("T")
PAGE = 100
PREFETCH = 10  # rows before the end of what is loaded that trigger the next page

OUTCOME_STYLE = {
    "resolved": "green",
    "unresolved": "red",
    "empty_patch": "yellow",
    "patch_failed": "yellow",
    "timeout": "yellow",
    "error_infra": "magenta",
    "abandoned": "dim",
}

VIM_TABLE_BINDINGS = [
    Binding("j,down", "cursor_down", "Down", show=False),
    Binding("k,up", "cursor_up", "Up", show=False),
    Binding("g,ctrl+home", "scroll_top", "Top", show=False),
    Binding("G,ctrl+end", "scroll_bottom", "Bottom", show=False),
]


class PagedTable(DataTable, Generic[T]):
    """A DataTable of one version's rows, fetched in pages in a worker thread."""

    BINDINGS = VIM_TABLE_BINDINGS
    COLUMNS: tuple[str, ...] = ()

    def __init__(self, data: RunData, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.data = data
        self.node_id: int | None = None
        self.items: list[T] = []
        self.total = 0
        self._asked: int | None = None  # offset of the page being fetched

    # subclasses: what to fetch and how a row looks
    def fetch(self, node_id: int, offset: int, limit: int) -> list[T]:
        raise NotImplementedError

    def count(self, node_id: int) -> int:
        raise NotImplementedError

    def cells(self, item: T) -> tuple[Any, ...]:
        raise NotImplementedError

    def on_mount(self) -> None:
        for name in self.COLUMNS:
            self.add_column(name, key=name)

    @property
    def selected(self) -> T | None:
        row = self.cursor_row
        return self.items[row] if 0 <= row < len(self.items) else None

    def show_node(self, node_id: int) -> None:
        """Show the first page of `node_id`'s rows."""
        self.node_id = node_id
        self.items = []
        self.total = 0
        self._asked = None
        self.clear()
        self._ask(0)

    def refresh_tail(self) -> None:
        """Fetch rows recorded since the last page (follow mode); the cursor stays."""
        if self.node_id is not None and self._asked is None and len(self.items) >= self.total:
            self._ask(len(self.items))

    def _ask(self, offset: int) -> None:
        if self.node_id is None:
            return
        self._asked = offset
        self._load(self.node_id, offset)

    @background("page")
    def _load(self, node_id: int, offset: int) -> None:
        total = self.count(node_id)
        rows = self.fetch(node_id, offset, PAGE)
        self.app.call_from_thread(self._append, node_id, offset, rows, total)

    def _append(self, node_id: int, offset: int, rows: list[T], total: int) -> None:
        if node_id != self.node_id or offset != len(self.items):
            return  # a newer request replaced this one
        self._asked = None
        self.total = total
        self.items.extend(rows)
        for item in rows:
            self.add_row(*self.cells(item), key=str(getattr(item, "id", len(self.items))))
        self._maybe_more()
        self.post_message(self.Loaded(self))

    def _maybe_more(self) -> None:
        if self._asked is None and len(self.items) < self.total and self.cursor_row >= len(self.items) - PREFETCH:
            self._ask(len(self.items))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._maybe_more()

    def caption(self, what: str) -> str:
        if self.node_id is None:
            return ""
        shown = f"{len(self.items)} of {self.total}" if len(self.items) < self.total else str(self.total)
        return f"node {self.node_id}: {shown} {what}"

    class Loaded(Message):
        """A page arrived (the caption can be updated)."""

        def __init__(self, table: "PagedTable") -> None:
            super().__init__()
            self.table = table


class EvalTable(PagedTable[EvalRow]):
    """A version's evaluations: task, outcome, duration, tokens, cost (enter: trajectory)."""

    COLUMNS = ("task", "outcome", "duration", "tokens", "cost")

    def fetch(self, node_id: int, offset: int, limit: int) -> list[EvalRow]:
        return self.data.evaluations(node_id, offset, limit)

    def count(self, node_id: int) -> int:
        return self.data.evaluation_count(node_id)

    def cells(self, item: EvalRow) -> tuple[Any, ...]:
        return (
            item.task_id,
            Text(item.status, style=OUTCOME_STYLE.get(item.status, "")),
            Text(fmt.seconds(item.duration), justify="right"),
            Text(fmt.tokens(item.tokens), justify="right"),
            Text(fmt.money(item.cost_usd), justify="right"),
        )


class CallTable(PagedTable[CallRow]):
    """The model calls tagged with a version: purpose, task, tokens, cost, latency, error."""

    COLUMNS = ("purpose", "task", "tokens", "cost", "latency", "error")

    def fetch(self, node_id: int, offset: int, limit: int) -> list[CallRow]:
        return self.data.llm_calls(node_id, offset, limit)

    def count(self, node_id: int) -> int:
        return self.data.llm_call_count(node_id)

    def cells(self, item: CallRow) -> tuple[Any, ...]:
        return (
            item.purpose or "-",
            item.task_id or "-",
            Text(f"{fmt.tokens(item.prompt_tokens)}+{fmt.tokens(item.completion_tokens)}", justify="right"),
            Text(fmt.money(item.cost_usd), justify="right"),
            Text(fmt.seconds(item.latency_s), justify="right"),
            Text(fmt.one_line(item.error, 60), style="red") if item.error else "",
        )
