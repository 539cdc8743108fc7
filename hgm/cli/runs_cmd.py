"""`hgm runs`, `hgm show` and `hgm export`: read runs from the archive.

Scores and listings come from `hgm.search.report` (shared with the TUI).

The archive (and gitpython behind it) is imported inside the commands so `hgm --help`
stays fast.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional

import typer

from hgm.cli.common import fail, print_json

if TYPE_CHECKING:
    from archive import Run

DEFAULT_RUNS_DIR = Path("runs")
DEFAULT_MAX_ROWS = 300
MAX_INDENT = 10  # deeper nodes show their depth in brackets instead of more indentation


def resolve_run_dir(run: str, runs_dir: Path = DEFAULT_RUNS_DIR) -> Path:
    """A run given as a path, or as the name of a run under `runs_dir`."""
    path = Path(run)
    if not path.exists() and not path.is_absolute() and (runs_dir / run).exists():
        return runs_dir / run
    return path


@contextlib.contextmanager
def open_run(run: str, *, writable: bool = False) -> Iterator["Run"]:
    """Open a run for a command; archive problems become a one-line error and exit 2."""
    from archive import ArchiveError, Run

    try:
        handle = Run.open(resolve_run_dir(run), writable=writable)
    except ArchiveError as exc:
        fail(str(exc))
    try:
        yield handle
    except ArchiveError as exc:
        fail(str(exc))
    finally:
        handle.close()


def settings_line(settings: dict[str, Any]) -> str:
    """Model and agent limits of a run, in one line."""
    agent = settings.get("agent") or {}
    if not agent:
        return f"model {settings.get('model') or '-'}"
    where = f" at {settings['api_base']}" if settings.get("api_base") else ""
    usd = f", ${agent['attempt_usd']:.2f} per attempt" if agent.get("attempt_usd") else ""
    return (f"model {settings.get('model')}{where}; agent limits ({agent.get('profile', '-')}): "
            f"solve {agent.get('solve_step_limit')} steps / {agent.get('solve_timeout_s'):g} s, "
            f"improve {agent.get('improve_step_limit')} steps / {agent.get('improve_timeout_s'):g} s, "
            f"tests {agent.get('test_timeout_s'):g} s{usd}")


def _console():
    """A rich console; when output is not a terminal, wide enough that rows do not wrap."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 160))


def _fmt_mean(mean: float | None, ci: list[float] | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{mean:.2f}"


def _guards_text(row: dict[str, Any]) -> str:
    """The guard column of `hgm show`: test machinery and contamination counts, retirement."""
    parts = []
    if row["machinery_evals"]:
        text = f"machinery {row['machinery_evals']}"
        parts.append(f"[yellow]{text} ![/yellow]" if "test-machinery" in row["flags"] else text)
    if row["contaminated_evals"]:
        parts.append(f"[red]contaminated {row['contaminated_evals']}[/red]")
    if "retired-clade" in row["flags"]:
        parts.append("[dim]in a retired clade[/dim]")
    return ", ".join(parts)


def _show_node(run: str, node_id: int, json_out: bool) -> None:
    """`hgm show RUN --node N`: one node, its evaluations and its ledger rows."""
    from hgm.search.report import iso_time, node_rows

    with open_run(run) as handle:
        handle.node(node_id)  # UnknownNode -> one-line error
        tree = handle.tree()
        row = next(r for r in node_rows(tree, handle.config) if r["id"] == node_id)
        evaluations = handle.evaluations(node_id)
        ledger = handle.ledger(node_id)
        memory = node_memory(handle, node_id)
    if json_out:
        from hgm.cli.memory_cmd import item_json

        print_json({"node": row, "evaluations": evaluations, "ledger": ledger,
                    "memory": {k: [item_json(i) for i in v] for k, v in memory.items()}})
        return
    from rich.table import Table

    console = _console()
    mean = _fmt_mean(row["mean"], row["ci95"])
    console.print(f"[bold]node {node_id}[/bold] (parent {row['parent'] if row['parent'] is not None else '-'}, "
                  f"commit {row['commit'][:12]}, {row['status']}, {row['operator'] or '-'}): "
                  f"{row['evals']} measured evaluations, mean {mean}"
                  + (f"; flags: {', '.join(row['flags'])}" if row["flags"] else ""))
    if evaluations:
        table = Table(title=f"evaluations of node {node_id}")
        for col in ("task", "status", "flags", "detail"):
            table.add_column(col, no_wrap=col != "detail")
        for e in evaluations:
            table.add_row(e["task_id"], e["status"], e.get("flags") or "", (e["detail"] or "")[:160])
        console.print(table)
    for entry in ledger:
        when = iso_time(entry["time"])
        if entry["kind"] == "retirement":
            console.print(f"[bold]retired[/bold] at {when}: {entry['reason']} (by {entry['producer'] or '-'})")
            continue
        if entry["node_id"] == node_id:
            head = f"[bold]{entry['decision']}[/bold] as a child of node {entry['parent_id']} at {when}"
        else:
            head = f"a child of this node was [bold]{entry['decision']}[/bold] at {when}"
        meta = [f"change {entry['diff_sha256'][:12]}"] if entry["diff_sha256"] else []
        meta += [f"{k}={v}" for k, v in entry["producer"].items()]
        console.print(head + (f" ({', '.join(meta)})" if meta else "") + (f": {entry['reason']}" if entry["reason"] else ""))
        table = Table(show_header=True)
        for col in ("check", "verdict", "reason"):
            table.add_column(col, no_wrap=col != "reason")
        for check in entry["checks"]:
            style = {"fail": "red", "warn": "yellow", "pass": "green"}.get(check["verdict"], "dim")
            table.add_row(check["name"], f"[{style}]{check['verdict']}[/{style}]", check["reason"][:300])
        console.print(table)
    from hgm.cli.memory_cmd import items_table

    for key, title in (("used", f"memory shown to the diagnosis that made node {node_id}"),
                       ("produced", f"memory distilled about node {node_id}"),
                       ("attempts", f"memory distilled about failed attempts to expand node {node_id}")):
        if memory[key]:
            console.print(items_table(memory[key], title))


def node_memory(run: "Run", node_id: int) -> dict[str, list[Any]]:
    """The memory items of node `node_id`: those the expansion that made it was shown (`used`),
    those distilled about it (`produced`), and about its failed expansions (`attempts`)."""
    made_by = run.expansions(child_id=node_id)
    return {
        "used": run.memory_used(made_by[0]["id"]) if made_by else [],
        "produced": run.memory(run_key=run.key, node_id=node_id),
        "attempts": [i for i in run.memory(run_key=run.key, parents=[node_id]) if i.node_id is None],
    }


def _chosen_by(best: dict[str, Any] | None) -> str:
    if not best:
        return "-"
    return "confirmed on held-out tasks" if best.get("chosen_by") == "confirmation" else f"{best['rule']} rule"


def register(app: typer.Typer) -> None:
    """Add `runs`, `show` and `export` to `app`."""

    @app.command("runs")
    def runs_cmd(
        directory: Path = typer.Argument(None, help="Folder holding run directories [default: ./runs]."),
        json_out: bool = typer.Option(False, "--json", help="Print the runs as JSON."),
    ) -> None:
        """List the runs in a folder: id, created, status, nodes, evaluations, best score."""
        from hgm.search.report import find_runs, run_listing

        if directory is None and not DEFAULT_RUNS_DIR.exists():
            summaries = []  # nothing has run here yet: not an error
        elif not (directory or DEFAULT_RUNS_DIR).is_dir():
            fail(f"{directory} is not a folder; pass the folder that holds your runs (default ./runs)")
        else:
            directory = directory or DEFAULT_RUNS_DIR
            summaries = [run_listing(p) for p in find_runs(directory)]
        directory = directory or DEFAULT_RUNS_DIR
        summaries.sort(key=lambda r: r.get("created") or "")
        if json_out:
            print_json(summaries)
            return
        if not summaries:
            typer.echo(f"no runs in {directory}")
            return
        from rich.table import Table

        table = Table(title=f"runs in {directory}")
        for col in ("id", "created", "status", "nodes", "evaluations", "best score"):
            table.add_column(col, justify="right" if col in ("nodes", "evaluations") else "left")
        for r in summaries:
            if r["status"] == "unreadable":
                table.add_row(r["id"], "-", "[red]unreadable[/red]", "-", "-", r["error"])
                continue
            best = r["best"]
            best_text = f"{best['mean']:.2f} (node {best['node']}, {best['evals']} evals)" if best else "-"
            created = dt.datetime.fromisoformat(r["created"]).astimezone().strftime("%Y-%m-%d %H:%M")
            table.add_row(r["id"], created, r["status"], str(r["nodes"]), str(r["evaluations"]), best_text)
        _console().print(table)

    @app.command("show")
    def show_cmd(
        run: str = typer.Argument(..., help="Run directory (or its name under ./runs)."),
        json_out: bool = typer.Option(False, "--json", help="Print the tree as JSON (always every node)."),
        max_rows: int = typer.Option(
            DEFAULT_MAX_ROWS, "--max-rows", min=1,
            help="Bigger trees show only the most trusted nodes and their ancestors.",
        ),
        node: Optional[int] = typer.Option(
            None, "--node", help="Show one node: its evaluations, its ledger (admission checks, retirement) and the "
            "memory items its expansion was shown and produced."
        ),
    ) -> None:
        """Show a run's tree: node, parent, evaluations, mean with 95% interval, status, guard flags."""
        from hgm.search.report import best_summary, confirmation_status, iso_time, node_rows, run_settings, trusted_subtree

        if node is not None:
            _show_node(run, node, json_out)
            return
        with open_run(run) as handle:
            info = handle.info()
            tree = handle.tree()
            config = handle.config
            confirmation = confirmation_status(handle, tree)
        rows = node_rows(tree, config)
        best = best_summary(tree, config, confirmation)
        failed = [
            {"id": f.id, "parent": f.parent_id, "status": f.status, "reason": f.reason} for f in tree.failed_expansions
        ]
        if json_out:
            print_json(
                {
                    "run": {
                        "id": Path(info.path).name,
                        "path": info.path,
                        "created": iso_time(info.created),
                        "status": info.status,
                        "nodes": info.nodes,
                        "evaluations": info.evaluations,
                    },
                    "settings": run_settings(config),
                    "best": best,
                    "confirmation": confirmation,
                    "nodes": rows,
                    "failed_expansions": failed,
                }
            )
            return
        from rich.table import Table

        best_id = best["node"] if best else None
        shown = rows
        if len(rows) > max_rows:
            keep = trusted_subtree(tree, {r["id"]: r["score"] for r in rows if r["score"] is not None}, max_rows)
            shown = [r for r in rows if r["id"] in keep]
        table = Table(
            title=f"{Path(info.path).name}: {info.status}, {info.nodes} nodes, {info.evaluations} evaluations",
            caption="mean = own resolved rate [95% Wilson interval]; * = the node this run ships "
            f"({_chosen_by(best)}); (+ node N) = second parent of a recombination",
        )
        for col, justify in (
            ("node", "left"), ("parent", "right"), ("evals", "right"), ("mean [95%]", "left"),
            ("clade", "right"), ("status", "left"), ("operator", "left"), ("guards", "left"),
        ):
            table.add_column(col, justify=justify, no_wrap=col not in ("operator", "guards"))
        for r in shown:
            depth = r["depth"]
            indent = "  " * depth if depth <= MAX_INDENT else "  " * MAX_INDENT + f"({depth}) "
            label = indent + ("└ " if depth else "") + str(r["id"]) + (" *" if r["id"] == best_id else "")
            clade = f"{r['clade_mean']:.2f}/{r['clade_evals']}" if r["clade_mean"] is not None else "-"
            table.add_row(
                label,
                "-" if r["parent"] is None else str(r["parent"]),
                str(r["evals"]),
                _fmt_mean(r["mean"], r["ci95"]),
                clade,
                r["status"],
                r["operator"] + (f" (+ node {r['second_parent']})" if r.get("second_parent") is not None else ""),
                _guards_text(r),
            )
        console = _console()
        console.print(settings_line(run_settings(config)))
        console.print(table)
        if len(shown) < len(rows):
            console.print(
                f"showing {len(shown)} of {len(rows)} nodes: the most trusted and their ancestors "
                "(--max-rows N for more, --json for all)"
            )
        if confirmation is not None:
            from hgm.cli.run_cmd import confirmation_text

            console.print(confirmation_text(confirmation))
        if failed:
            ftable = Table(title=f"{len(failed)} expansion(s) without a child")
            for col in ("attempt", "parent", "status", "reason"):
                ftable.add_column(col)
            for f in failed:
                ftable.add_row(str(f["id"]), str(f["parent"]), f["status"], f["reason"][:120])
            console.print(ftable)

    @app.command("export")
    def export_cmd(
        run: str = typer.Argument(..., help="Run directory (or its name under ./runs)."),
        to: Path = typer.Option(..., "--to", help="Where to write (must not exist)."),
        node: int = typer.Option(None, "--node", help="Node id to export."),
        best: bool = typer.Option(False, "--best", help="Export the node the run ships (its final-choice rule; see `hgm best`)."),
        fmt: str = typer.Option("dir", "--format", help="dir (runnable agent), patch (vs the seed), or bundle (git)."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Export an agent version as a runnable directory, a patch against the seed, or a git bundle."""
        from archive import EXPORT_FORMATS
        from hgm.search.report import best_summary, confirmation_status

        if fmt not in EXPORT_FORMATS:
            fail(f"unknown --format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
        if (node is None) == (not best):
            fail("give exactly one of --node N or --best")
        if to.exists() or to.is_symlink():
            fail(f"{to} already exists; choose a new path or remove it")
        with open_run(run) as handle:
            if best:
                tree = handle.tree()
                summary = best_summary(tree, handle.config, confirmation_status(handle, tree))
                if summary is None:
                    fail("no node of this run has been evaluated yet; pass --node N instead of --best")
                node = summary["node"]
            handle.node(node)  # UnknownNode -> one-line error
            try:
                written = handle.export(node, to, fmt)
            except (OSError, ValueError) as exc:
                fail(f"export failed: {exc}")
        if json_out:
            print_json({"node": node, "format": fmt, "path": str(written)})
        else:
            typer.echo(f"exported node {node} as {fmt} to {written}")
