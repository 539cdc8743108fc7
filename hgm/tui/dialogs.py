"""Small modal screens: pick a version to diff against, export a version, show the keys."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from archive import EXPORT_FORMATS
from hgm.tui.data import TreeSnapshot
from hgm.tui.labels import node_label
from hgm.tui.panes import VimScroll

MAX_OPTIONS = 200


def matching_versions(snapshot: TreeSnapshot, text: str, first: Iterable[int] = ()) -> list[int]:
    """Versions whose id starts with `text` or whose operator contains it; `first` lead."""
    text = text.strip().lower()
    order = list(dict.fromkeys(i for i in first if i in snapshot.nodes))
    order += [i for i in sorted(snapshot.nodes) if i not in set(order)]
    if not text:
        return order[:MAX_OPTIONS]
    found = [i for i in order if str(i).startswith(text) or text in snapshot.nodes[i].operator.lower()]
    return found[:MAX_OPTIONS]


class CompareScreen(ModalScreen[int | None]):
    """Pick the version to diff the selected one against (type an id to narrow the list)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, snapshot: TreeSnapshot, node_id: int) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.node_id = node_id
        row = snapshot.nodes[node_id]
        header = snapshot.header
        self.first = [i for i in (row.parent_id, header.shipped, snapshot.root_id) if i is not None and i != node_id]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Diff version {self.node_id} against… (type an id, enter picks)")
            yield Input(placeholder="version id or operator", id="compare-input")
            yield OptionList(id="compare-list")

    def on_mount(self) -> None:
        self._fill("")

    def _fill(self, text: str) -> None:
        options = self.query_one("#compare-list", OptionList)
        options.clear_options()
        ids = [i for i in matching_versions(self.snapshot, text, self.first) if i != self.node_id]
        options.add_options([Option(node_label(self.snapshot.nodes[i]), id=str(i)) for i in ids])
        if ids:
            options.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        options = self.query_one("#compare-list", OptionList)
        if options.highlighted is not None and options.option_count:
            self.dismiss(int(options.get_option_at_index(options.highlighted).id))

    def on_key(self, event) -> None:
        if event.key in ("down", "up"):  # move through the list while typing
            options = self.query_one("#compare-list", OptionList)
            options.action_cursor_down() if event.key == "down" else options.action_cursor_up()
            event.stop()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id))


class ExportScreen(ModalScreen[tuple[Path, str] | None]):
    """Where and how to export a version (the same export as `hgm export`)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, node_id: int, default: Path) -> None:
        super().__init__()
        self.node_id = node_id
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Export version {self.node_id} as `hgm export` does, to a path that does not exist yet:")
            yield Input(str(self.default), id="export-path")
            yield Select([(f, f) for f in EXPORT_FORMATS], value="dir", allow_blank=False, id="export-format")
            with Horizontal(id="dialog-buttons"):
                yield Button("Export", variant="primary", id="export-ok")
                yield Button("Cancel", id="export-cancel")

    def _submit(self) -> None:
        path = self.query_one("#export-path", Input).value.strip()
        if not path:
            self.notify("give a path to export to", severity="error")
            return
        fmt_name = str(self.query_one("#export-format", Select).value)
        self.dismiss((Path(path).expanduser(), fmt_name))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "export-ok":
            self._submit()
        else:
            self.dismiss(None)


def key_table(bindings: Iterable[tuple[str, BindingType]]) -> Table:
    """A table of (where, binding) pairs: keys, what they do, and the longer help.

    Keys doing the same thing in the same place share a row (e.g. `j, down`).
    """
    rows: dict[tuple[str, str], list[str]] = {}
    for where, binding in bindings:
        if not isinstance(binding, Binding) or not binding.description:
            continue
        text = binding.description + (f": {binding.tooltip}" if binding.tooltip else "")
        keys = rows.setdefault((where, text.lower()), [text])
        for key in [binding.key_display] if binding.key_display else binding.key.split(","):
            name = _key_name(key.strip())
            if name not in keys[1:]:
                keys.append(name)
    table = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
    table.add_column("keys", style="bold cyan", no_wrap=True)
    table.add_column("where", style="dim", no_wrap=True)
    table.add_column("does")
    for (where, _), (text, *keys) in rows.items():
        table.add_row(", ".join(keys), where, text)
    return table


def _key_name(key: str) -> str:
    return {"slash": "/", "question_mark": "?", "full_stop": ".", "comma": ",", "escape": "esc"}.get(key, key)


class HelpScreen(ModalScreen[None]):
    """Every key of the screen below, with what it does."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss(None)", "Close")]

    def __init__(self, bindings: list[tuple[str, BindingType]]) -> None:
        super().__init__()
        self.bindings = bindings

    def compose(self) -> ComposeResult:
        with VimScroll(id="help"):
            yield Static(Text("hgm tui: keys (ctrl+p finds any of them by name; esc closes)", style="bold"))
            yield Static(key_table(self.bindings), id="help-keys")
