"""`hgm runs`, `hgm show` and `hgm export`: read runs from the archive.

Scores and listings come from `hgm.search.report` (shared with the TUI).

The archive (and gitpython behind it) is imported inside the commands so `hgm --help`
stays fast.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

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
        from rich.console import Console
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
    ) -> None:
        """Show a run's tree: node, parent, evaluations, mean with 95% interval, status."""
        from hgm.search.report import best_summary, iso_time, node_rows, run_settings, trusted_subtree

        with open_run(run) as handle:
            info = handle.info()
            tree = handle.tree()
            config = handle.config
        rows = node_rows(tree, config)
        best = best_summary(tree, config)
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
                    "nodes": rows,
                    "failed_expansions": failed,
                }
            )
            return
        from rich.console import Console
        from rich.table import Table

        best_id = best["node"] if best else None
        shown = rows
        if len(rows) > max_rows:
            keep = trusted_subtree(tree, {r["id"]: r["score"] for r in rows if r["score"] is not None}, max_rows)
            shown = [r for r in rows if r["id"] in keep]
        table = Table(
            title=f"{Path(info.path).name}: {info.status}, {info.nodes} nodes, {info.evaluations} evaluations",
            caption=f"mean = own resolved rate [95% Wilson interval]; * = the node this run ships ({best['rule'] if best else '-'} rule)"
                    "; (+ node N) = second parent of a recombination",
        )
        for col, justify in (
            ("node", "left"), ("parent", "right"), ("evals", "right"), ("mean [95%]", "left"),
            ("clade", "right"), ("status", "left"), ("operator", "left"),
        ):
            table.add_column(col, justify=justify, no_wrap=col != "operator")
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
            )
        console = _console()
        console.print(settings_line(run_settings(config)))
        console.print(table)
        if len(shown) < len(rows):
            console.print(
                f"showing {len(shown)} of {len(rows)} nodes: the most trusted and their ancestors "
                "(--max-rows N for more, --json for all)"
            )
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
        from hgm.search.report import best_summary

        if fmt not in EXPORT_FORMATS:
            fail(f"unknown --format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
        if (node is None) == (not best):
            fail("give exactly one of --node N or --best")
        if to.exists() or to.is_symlink():
            fail(f"{to} already exists; choose a new path or remove it")
        with open_run(run) as handle:
            if best:
                summary = best_summary(handle.tree(), handle.config)
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
