"""Rich text for tree rows and the header bar.

Only the 16 ANSI colour names are used (plus bold/dim), and every badge is a symbol as
well as a colour, so the view reads the same in a 16-colour or monochrome terminal.
"""

from __future__ import annotations

from rich.text import Text

from hgm.tui import fmt
from hgm.tui.data import NodeRow, RunHeader

SHIPPED = "★"
IN_FLIGHT = "⟳"
FAILED = "✗"
PLAIN_OPERATORS = ("", "seed", "revise", "self_improve")  # the usual operators (runs before operators were mixed said self_improve) are not repeated on every row

STATUS_STYLE = {"running": "bold green", "finished": "cyan", "stopped": "yellow", "crashed": "bold red", "replay": "bold magenta"}


def mean_style(mean: float | None) -> str:
    if mean is None:
        return "dim"
    return "green" if mean >= 0.5 else ("yellow" if mean >= 0.2 else "red")


def node_label(row: NodeRow) -> Text:
    """'12 ★ .80[.49-.94]/10 c.71/40 ⟳2 ✗1 recombine' — id, shipped, own mean with its 95%
    interval over n evaluations, clade estimate over its evaluations, badges, operator."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(str(row.id), style="bold")
    if row.shipped:
        text.append(f" {SHIPPED}", style="bold yellow")
    text.append(" ")
    if row.evals:
        text.append(fmt.rate(row.mean), style=f"bold {mean_style(row.mean)}")
        text.append(fmt.interval(row.low, row.high), style="dim")
        text.append(f"/{row.evals}")
    else:
        text.append("-/0", style="dim")
    if row.children:
        text.append(f" c{fmt.rate(row.clade_mean)}/{row.clade_evals}", style="cyan")
    flight = row.in_flight
    if flight:
        count = flight.evaluations + int(flight.expanding)
        text.append(f" {IN_FLIGHT}{count if count > 1 else ''}", style="bold magenta")
    if row.failed_expansions:
        text.append(f" {FAILED}{row.failed_expansions}", style="red")
    if row.operator not in PLAIN_OPERATORS:
        text.append(f" {row.operator}", style="italic blue")
    if row.status not in ("active", ""):
        text.append(f" [{row.status}]", style="dim")
    return text


def header_text(header: RunHeader, follow: bool) -> Text:
    """One line: run, status (and replay position), evaluation budget, dollars, the shipped node."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f" {header.name} ", style="bold reverse")
    text.append(" ")
    text.append(f"● {header.status}", style=STATUS_STYLE.get(header.status, "bold"))
    if header.note:
        text.append(f" {header.note}", style="magenta")
    budget = f"/{header.budget_evals}" if header.budget_evals else ""
    text.append(f"  evals {header.evaluations}{budget}")
    text.append(f"  {header.nodes} nodes")
    if header.status != "replay":  # model calls are not replayed: the money is today's
        spent = fmt.money(header.cost_usd) + (f"/{fmt.money(header.budget_usd)}" if header.budget_usd else "")
        text.append(f"  {spent}")
    if header.shipped is None:
        text.append("  ships -", style="dim")
    else:
        text.append(f"  ships {SHIPPED}{header.shipped}", style="bold yellow")
        text.append(f" ({fmt.rate(header.shipped_mean)}, {header.rule})")
    if follow and not header.note:
        text.append("  following", style="green")
    return text
