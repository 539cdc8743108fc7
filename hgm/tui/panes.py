"""The Summary and Diff tabs, and a scrolling container that knows vim keys."""

from __future__ import annotations

import io

from rich.console import Console, Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from hgm.tui.data import NodeDetail

MAX_DIFF_LINES = 5000
COMPACT_BELOW = 110  # columns: a narrower footer drops its padding...
PALETTE_HINT_FROM = 100  # ...and, narrower still, its ctrl+p hint (the key still works; ? lists it)
SYNTAX_THEME = "ansi_dark"  # ANSI colours only: the same look in a 16-colour terminal


class VimScroll(VerticalScroll):
    """A focusable scrolling view: j/k, g/G, arrows, page keys."""

    BINDINGS = [
        Binding("j", "scroll_down", "Down", show=False),
        Binding("k", "scroll_up", "Up", show=False),
        Binding("h", "scroll_left", "Left", show=False),
        Binding("l", "scroll_right", "Right", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
    ]


def fit_footer(footer: Footer, width: int) -> None:
    """Keep every key of the footer on screen in an 80-column terminal."""
    footer.compact = width < COMPACT_BELOW
    footer.show_command_palette = width >= PALETTE_HINT_FROM


def summary_table(detail: NodeDetail) -> Table:
    """Two columns, label and value, one row per field of the detail."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in detail.rows():
        table.add_row(label, value)
    return table


class SummaryPane(VimScroll):
    """Who a version is: parent, lesson, diagnosis, acceptance, costs, statistics."""

    detail: NodeDetail | None = None

    def compose(self):
        yield Static("select a version", id="summary-body")

    def show(self, detail: NodeDetail) -> None:
        self.detail = detail
        self.query_one("#summary-body", Static).update(summary_table(detail))

    def text(self) -> str:
        """The summary as plain text, laid out as on screen (empty before a version is shown)."""
        if self.detail is None:
            return ""
        console = Console(width=max(40, self.size.width), file=io.StringIO(), color_system=None)
        with console.capture() as capture:
            console.print(summary_table(self.detail))
        return capture.get()


def diff_renderable(diff: str, empty: str = "no change in the agent's code") -> RenderableType:
    """A unified diff, syntax-highlighted with ANSI colours (its first MAX_DIFF_LINES lines)."""
    if not diff.strip():
        return Text(empty, style="dim")
    lines = diff.splitlines()
    note = None
    if len(lines) > MAX_DIFF_LINES:
        note = Text(f"[... {len(lines) - MAX_DIFF_LINES} more lines; `hgm export --format patch` has them all]", style="dim")
        diff = "\n".join(lines[:MAX_DIFF_LINES])
    syntax = Syntax(diff, "diff", theme=SYNTAX_THEME, word_wrap=False, background_color="default")
    return Group(syntax, note) if note else syntax


class DiffPane(VimScroll):
    """What a version changed against its parent, or against a version the user picked."""

    DEFAULT_CSS = """
    DiffPane { overflow-x: auto; }
    DiffPane > Static { width: auto; min-width: 100%; }
    """

    def compose(self):
        yield Static("", id="diff-title")
        yield Static("select a version", id="diff-body")

    def show(self, title: str, diff: str) -> None:
        self.query_one("#diff-title", Static).update(Text(title, style="bold"))
        self.query_one("#diff-body", Static).update(diff_renderable(diff))
        self.scroll_home(animate=False)
        self.diff_text = diff

    def show_message(self, title: str, message: str) -> None:
        self.query_one("#diff-title", Static).update(Text(title, style="bold"))
        self.query_one("#diff-body", Static).update(Text(message, style="dim"))
        self.diff_text = ""

    diff_text: str = ""
