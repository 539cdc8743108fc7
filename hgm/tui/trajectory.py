"""The trajectory viewer: an evaluation's steps (action, observation), final patch, grading report."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.syntax import Syntax
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from hgm.tui import fmt
from hgm.tui.data import EvalRow, RunData, Step, TrajectoryView
from hgm.tui.panes import SYNTAX_THEME, VimScroll, diff_renderable, fit_footer
from hgm.tui.tables import OUTCOME_STYLE
from hgm.tui.workers import background

LOG_TAIL_LINES = 200


def step_renderable(step: Step) -> RenderableType:
    title = f"step {step.number}"
    if step.exit_code is not None:
        title += f" · exit {step.exit_code}"
    parts: list[RenderableType] = [Rule(title, align="left", style="blue")]
    if step.thought:
        parts.append(Text(step.thought, style="italic"))
    if step.note:
        parts.append(Text(step.note, style="yellow"))
    if step.action:
        parts.append(Text("$ " + step.action, style="bold cyan"))
    if step.observation:
        parts.append(Text(step.observation))
    return Group(*parts)


def eval_title(row: EvalRow) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f" {row.task_id} ", style="bold reverse")
    text.append(f" {row.status}", style=f"bold {OUTCOME_STYLE.get(row.status, '')}")
    text.append(f"  {fmt.seconds(row.duration)}  {fmt.tokens(row.tokens)} tokens  {fmt.money(row.cost_usd)}")
    if row.detail:
        text.append(f"  {fmt.one_line(row.detail, 120)}", style="dim")
    return text


class TrajectoryScreen(Screen[None]):
    """Scroll through one evaluation: every step, then the patch, the report and the test log."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to the run"),
        Binding("p", "jump('patch')", "Patch", tooltip="Jump to the final patch"),
        Binding("t", "jump('report')", "Report", tooltip="Jump to the grading report"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, data: RunData, row: EvalRow, node_id: int) -> None:
        super().__init__()
        self.data = data
        self.row = row
        self.node_id = node_id
        self.view: TrajectoryView | None = None

    def compose(self) -> ComposeResult:
        yield Static(eval_title(self.row), id="header")
        with VimScroll(id="trajectory"):
            yield Static(Text(f"node {self.node_id}: reading the trajectory…", style="dim"), id="steps")
            yield Static("", id="patch")
            yield Static("", id="report")
            yield Static("", id="log")
        yield Footer()

    def on_resize(self, event: events.Resize) -> None:
        fit_footer(self.query_one(Footer), event.size.width)

    def on_mount(self) -> None:
        self.query_one("#trajectory").focus()
        self._read()

    @background("read")
    def _read(self) -> None:
        view = self.data.trajectory(self.row)
        self.app.call_from_thread(self._show, view)

    def _show(self, view: TrajectoryView) -> None:
        self.view = view
        steps: list[RenderableType] = [Text(f"node {self.node_id} · {len(view.steps)} steps", style="bold")]
        steps += [Text(note, style="yellow") for note in view.notes]
        steps += [step_renderable(s) for s in view.steps]
        self.query_one("#steps", Static).update(Group(*steps))
        self.query_one("#patch", Static).update(
            Group(Rule("final patch", align="left", style="green"),
                  diff_renderable(view.patch, empty="empty patch: the attempt changed nothing"))
        )
        report: RenderableType = (
            Syntax(view.report, "json", theme=SYNTAX_THEME, background_color="default", word_wrap=True)
            if view.report
            else Text("no grading report (report.json) for this evaluation", style="dim")
        )
        self.query_one("#report", Static).update(Group(Rule("grading report", align="left", style="green"), report))
        tail = "\n".join(view.test_log.splitlines()[-LOG_TAIL_LINES:])
        self.query_one("#log", Static).update(
            Group(Rule(f"test log (last {LOG_TAIL_LINES} lines)", align="left", style="green"),
                  Text(tail) if tail else Text("no test log", style="dim"))
        )

    def action_jump(self, section: str) -> None:
        self.query_one("#trajectory", VimScroll).scroll_to_widget(self.query_one(f"#{section}"), top=True, animate=False)
