"""The Textual application behind `hgm tui`: the run picker or one run's view.

Every key binding of our screens and widgets is also a command of Textual's command
palette (ctrl+p), built from the bindings themselves so the two never disagree.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import Tree

from archive import ArchiveError
from hgm.tui.data import RunData
from hgm.tui.picker import PickerScreen
from hgm.tui.run_screen import RunScreen
from hgm.tui.tables import PagedTable
from hgm.tui.trajectory import TrajectoryScreen
from hgm.tui.tree_view import AgentTree

CSS = """
#header { height: 1; background: $panel; }
#body { height: 1fr; }
#left { width: 46%; min-width: 30; border-right: vkey $primary 50%; }
#filter { display: none; }
#filter.visible { display: block; }
AgentTree { height: 1fr; scrollbar-size-vertical: 1; }
TabbedContent { width: 1fr; }
TabPane { padding: 0 1; }
.caption { height: 1; }
EvalTable, CallTable { height: 1fr; }
#runs { height: 1fr; }
#picker-note { height: auto; padding: 0 1; }
#dialog { width: 80%; max-width: 90; height: auto; max-height: 80%; padding: 1 2; background: $surface;
          border: round $primary; }
#dialog Label { width: 100%; }
#compare-list { height: auto; max-height: 14; }
#dialog-buttons { height: auto; align-horizontal: right; }
#dialog-buttons Button { margin-left: 1; }
CompareScreen, ExportScreen, HelpScreen { align: center middle; }
#help { width: 90%; height: 90%; padding: 1 2; background: $surface; border: round $primary; }
#trajectory { height: 1fr; padding: 0 1; }
"""


TREE_KEYS_SHOWN = ("cursor_parent", "cursor_next_sibling", "cursor_previous_sibling", "toggle_node")  # Textual's, listed by `?`
SIXTEEN_COLOURS = ("standard", "windows")  # rich's names of 16-colour (or fewer) terminals


def theme_for(color_system: str | None) -> str | None:
    """The theme for a terminal's colour system: in 16 colours, the terminal's own palette."""
    return "ansi-dark" if color_system in SIXTEEN_COLOURS else None


def _ours(node: DOMNode, action: str) -> bool:
    """Is `action` (as bound on `node`) implemented by hgm's own code rather than Textual's?"""
    name = action.split("(", 1)[0]
    target: object = node
    if "." in name:
        namespace, name = name.split(".", 1)
        target = node.app if namespace == "app" else node.screen if namespace == "screen" else node
    method = getattr(type(target), f"action_{name}", None)
    return method is not None and getattr(method, "__module__", "").startswith("hgm.tui")


class HgmTui(App[None]):
    """`hgm tui`: browse runs and their trees of agent versions."""

    TITLE = "hgm"
    CSS = CSS
    BINDINGS = [Binding("ctrl+p", "command_palette", "Commands", show=False, tooltip="Find any action by name")]

    def __init__(
        self,
        data: RunData | None = None,
        runs_dir: Path = Path("runs"),
        *,
        follow: bool | None = None,
        poll_s: float = 1.0,
        export_dir: Path = Path("exports"),
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.first_data = data
        self.runs_dir = runs_dir
        self.follow = follow
        self.poll_s = poll_s
        self.export_dir = export_dir
        self.clock = clock
        self._opened: list[RunData] = []

    def on_mount(self) -> None:
        theme = theme_for(self.console.color_system)
        if theme is not None and not self.is_headless:
            self.theme = theme
        if self.first_data is not None:
            self._push_run(self.first_data)
        else:
            self.push_screen(PickerScreen(self.runs_dir))

    def open_run(self, path: Path) -> None:
        """Open a run from the picker (a one-line notice if it cannot be read)."""
        try:
            data = RunData.open(path)
        except ArchiveError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self._push_run(data)

    def _push_run(self, data: RunData) -> None:
        self._opened.append(data)
        self.push_screen(RunScreen(data, follow=self.follow, poll_s=self.poll_s, export_dir=self.export_dir))

    @property
    def run_screen(self) -> RunScreen | None:
        for screen in reversed(self.screen_stack):
            if isinstance(screen, RunScreen):
                return screen
        return None

    def on_unmount(self) -> None:
        for data in self._opened:
            data.close()

    # ----- command palette and help --------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        seen: set[str] = set()
        for key, active in screen.active_bindings.items():
            binding = active.binding
            if not (active.enabled and binding.description and _ours(active.node, binding.action)):
                continue
            if binding.action in seen:
                continue
            seen.add(binding.action)
            key_name = binding.key_display or key
            yield SystemCommand(
                binding.description,
                f"key {key_name}" + (f": {binding.tooltip}" if binding.tooltip else ""),
                partial(self.run_action, binding.action, active.node),
            )

    def binding_help(self, screen: Screen) -> list[tuple[str, BindingType]]:
        """(where, binding) for every key of `screen` and the widgets on it, for the help screen."""
        groups: list[tuple[str, list[BindingType]]] = [(type(screen).__name__.removesuffix("Screen").lower(), list(screen.BINDINGS))]
        if isinstance(screen, RunScreen):
            groups += [
                ("tree", list(AgentTree.BINDINGS) + [b for b in Tree.BINDINGS if b.action in TREE_KEYS_SHOWN]),
                ("tables", list(PagedTable.BINDINGS) + [Binding("enter", "open", "Evaluations: open the trajectory")]),
                ("trajectory", list(TrajectoryScreen.BINDINGS)),
            ]
        groups.append(("anywhere", list(self.BINDINGS)))
        return [(where, binding) for where, bindings in groups for binding in bindings]
