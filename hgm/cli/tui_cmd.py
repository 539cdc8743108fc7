"""`hgm tui`: browse a run's tree of agent versions in the terminal (Textual).

Textual and the archive are imported inside the command so `hgm --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from hgm.cli.common import fail
from hgm.cli.runs_cmd import DEFAULT_RUNS_DIR, resolve_run_dir


def register(app: typer.Typer) -> None:
    """Add `tui` to `app`."""

    @app.command("tui")
    def tui_cmd(
        run: str = typer.Argument(None, help="Run directory (or its name under ./runs); omit it to pick a run."),
        runs_dir: Path = typer.Option(DEFAULT_RUNS_DIR, "--runs-dir", help="Folder the run picker lists."),
        follow: bool = typer.Option(
            None, "--follow/--no-follow", help="Refresh while the run is written [default: on while it is live]."
        ),
        export_dir: Path = typer.Option(Path("exports"), "--export-dir", help="Default folder for `e` (export)."),
    ) -> None:
        """Browse a run's tree of agent versions: summary, diffs, evaluations, trajectories, model calls.

        Opens the run read-only; while `hgm run` writes it, the view follows on its own.
        Press ? for the keys, ctrl+p for every command by name.
        """
        from archive import ArchiveError

        from hgm.tui.app import HgmTui
        from hgm.tui.data import RunData

        data = None
        if run is not None:
            try:
                data = RunData.open(resolve_run_dir(run, runs_dir))
            except ArchiveError as exc:
                fail(str(exc))
        elif runs_dir.exists() and not runs_dir.is_dir():
            fail(f"{runs_dir} is not a folder; pass the folder that holds your runs with --runs-dir")
        HgmTui(data, runs_dir, follow=follow, export_dir=export_dir).run()
