"""`hgm memory RUN|FILE`: list the lessons memory of a run or of a bank shared by runs."""

from __future__ import annotations

from typing import Any, Optional

import typer

from hgm.cli.common import fail, print_json

POLARITIES = ("helped", "hurt", "unproven")


def _items(source: str, filters: dict[str, Any]) -> tuple[str, list[Any]]:
    """(what was read, items) from a run directory (or its name under ./runs) or a bank file."""
    from archive.errors import ArchiveError
    from archive.memory import MemoryBank

    from hgm.cli.runs_cmd import open_run, resolve_run_dir

    path = resolve_run_dir(source)
    if path.is_file():
        try:
            with MemoryBank.open(path, writable=False) as bank:
                return f"memory bank {path}", bank.items(**filters)
        except ArchiveError as exc:
            fail(str(exc))
    with open_run(source) as run:
        if not run.has_memory:
            return f"run {run.path.name} (made before the memory existed)", []
        return f"run {run.path.name}", run.memory(**filters)


def item_json(item: Any) -> dict[str, Any]:
    """An item as `--json` and `hgm show --node --json` print it: every field, plus its outcome line."""
    from hgm.evolve.memory import outcome_line

    return {**item.to_dict(), "outcome": outcome_line(item)}


def items_table(items: list[Any], title: str) -> Any:
    """A rich table of memory items (shared with `hgm show --node`)."""
    from rich.table import Table

    from hgm.evolve.memory import outcome_line

    table = Table(title=title)
    for col in ("item", "run", "node", "polarity", "title", "outcome", "words by"):
        table.add_column(col, no_wrap=col in ("item", "node", "polarity"))
    style = {"helped": "green", "hurt": "red", "unproven": "dim"}
    for item in items:
        node = f"{item.parent_id if item.parent_id is not None else '-'}→{item.node_id if item.node_id is not None else 'x'}"
        polarity = f"[{style[item.polarity]}]{item.polarity}[/{style[item.polarity]}]"
        if item.retired:
            polarity += " [yellow](retired)[/yellow]"
        table.add_row(str(item.id), item.run, node, polarity, item.title, outcome_line(item),
                      f"{item.written_by} ({item.model or '-'})")
    return table


def register(app: typer.Typer) -> None:
    @app.command("memory")
    def memory_cmd(
        source: str = typer.Argument(..., help="A run directory (or its name under ./runs), or a memory bank file."),
        polarity: Optional[str] = typer.Option(None, "--polarity", help="Only items that helped, hurt or are unproven."),
        text: Optional[str] = typer.Option(None, "--text", help="Only items whose words contain TEXT (any case)."),
        node: Optional[int] = typer.Option(None, "--node", help="Only items about the child N (a run's node id)."),
        limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N items, newest first."),
        json_out: bool = typer.Option(False, "--json", help="Print the items as JSON."),
    ) -> None:
        """List the lessons memory: what earlier expansions tried, what hgm measured, who wrote the words.

        Each item is one change an expansion tried: its title and strategy (a model's words,
        or a fallback built from the evidence), the evidence and polarity hgm measured
        (the gate's decision; the child against its parent on shared tasks), and its
        provenance. Items about retired nodes are marked and never shown to a diagnosis.
        """
        if polarity is not None and polarity not in POLARITIES:
            fail(f"unknown --polarity {polarity!r}; use one of {', '.join(POLARITIES)}")
        filters = {"polarity": polarity, "text": text, "node_id": node, "limit": limit, "newest_first": limit is not None}
        what, items = _items(source, filters)
        if json_out:
            print_json([item_json(i) for i in items])
            return
        if not items:
            typer.echo(f"no memory items in {what}" + (" match" if polarity or text or node is not None else ""))
            return
        from hgm.cli.runs_cmd import _console

        _console().print(items_table(items, f"{len(items)} memory item(s) of {what}"))


__all__ = ["item_json", "items_table", "register"]
