"""`hgm vet` (put a child agent through the admission gate) and `hgm retire` (take a clade out).

`hgm vet` runs the very function the loop runs for every child (`hgm.evolve.gate.vet`),
so its verdict is the loop's. Heavy modules are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from hgm.cli.common import fail, print_json

EXIT_REJECTED = 1
STYLES = {"pass": "green", "fail": "red", "warn": "yellow", "skip": "dim"}


def _agent_dir(path: Path, flag: str) -> Path:
    if not path.is_dir():
        fail(f"{flag} {path} is not a directory; pass an agent directory as `hgm export --format dir` writes it")
    if not (path / "agent").is_dir():
        fail(f"{flag} {path} has no agent/ package; pass the folder that contains agent/ (see `hgm export`)")
    return path


def _test_sandbox(backend_name: str) -> Any:
    from evaluators.grading import python_for
    from sandbox import get_backend
    from sandbox.api import SandboxError, SandboxSpec

    from hgm.evolve.gate import TestSandbox

    if backend_name not in ("auto", "docker", "local"):
        fail(f"unknown --backend {backend_name!r}; use auto, docker or local")
    try:
        backend = get_backend(backend_name)  # type: ignore[arg-type]
    except SandboxError as exc:
        fail(f"{exc}; use --backend local, start a Docker engine, or --no-tests")
    return TestSandbox(backend, SandboxSpec(labels={"hgm.purpose": "vet"}), python_for(backend))


def _print_verdict(verdict: Any, parent: Path, child: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{child} as a child of {parent}")
    for col in ("check", "verdict", "reason"):
        table.add_column(col, no_wrap=col != "reason")
    for check in verdict.checks:
        style = STYLES.get(check.verdict, "")
        table.add_row(check.name, f"[{style}]{check.verdict}[/{style}]", check.reason)
    console = Console()
    console.print(table)
    decision = "[green]accepted[/green]" if verdict.accepted else "[red]rejected[/red]"
    console.print(f"{decision} (change {verdict.diff_sha256[:12]}, child {verdict.child_digest[:12]})")


def register(app: typer.Typer) -> None:
    """Add `vet` and `retire` to `app`."""

    @app.command("vet")
    def vet_cmd(
        parent: Path = typer.Option(..., "--parent", help="The parent agent directory (holding agent/)."),
        child: Path = typer.Option(..., "--child", help="The child agent directory to judge."),
        run: Optional[str] = typer.Option(None, "--run", help="Use this run's frozen gate settings (protected paths)."),
        backend: str = typer.Option("auto", "--backend", help="Sandbox for the tests: auto, docker or local."),
        no_tests: bool = typer.Option(False, "--no-tests", help="Static checks only (the test checks show as skip)."),
        json_out: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
    ) -> None:
        """Put a child agent through the admission gate the loop uses; exit 1 if it would be rejected.

        Checks: changes, files outside agent/, protected paths, binary files, size, new
        capabilities (network, downloads, environment, files outside the work tree, hidden
        tests), then in a fresh sandbox without network: the child's own tests (contract tests
        from the parent) and whether its tests were weakened.
        """
        from hgm.evolve.gate import GateSettings, vet

        parent_dir, child_dir = _agent_dir(parent, "--parent"), _agent_dir(child, "--child")
        settings = GateSettings()
        if run is not None:
            from hgm.cli.runs_cmd import open_run
            from hgm.loop.session import gate_settings

            with open_run(run) as handle:
                settings = gate_settings(handle)
        sandbox = None if no_tests else _test_sandbox(backend)
        try:
            verdict = vet(parent_dir, child_dir, settings, sandbox)
        except OSError as exc:
            fail(f"cannot read the agents: {exc}")
        except Exception as exc:  # noqa: BLE001 - sandbox/engine failures: one line, not a traceback
            fail(f"the test sandbox failed: {exc.__class__.__name__}: {exc}; try --backend local or --no-tests")
        if json_out:
            print_json({"parent": str(parent_dir), "child": str(child_dir), **verdict.to_dict()})
        else:
            _print_verdict(verdict, parent_dir, child_dir)
        if not verdict.accepted:
            raise typer.Exit(EXIT_REJECTED)

    @app.command("retire")
    def retire_cmd(
        run: str = typer.Argument(..., help="Run directory (or its name under ./runs)."),
        node: int = typer.Argument(..., help="The node to retire (with its whole clade)."),
        why: str = typer.Option(..., "--why", help="Why it is retired (kept in the ledger)."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Take a node and its clade out of expansion and out of the final choice (nothing is deleted).

        Recorded in the run's ledger (`hgm show RUN --node N`). The run must not be running:
        stop it, retire, then `hgm resume`.
        """
        import getpass

        from hgm.cli.runs_cmd import open_run

        if not why.strip():
            fail("--why must say why the node is retired")
        with open_run(run, writable=True) as handle:
            row = handle.retire(node, why, {"user": getpass.getuser(), "command": "hgm retire"})
            clade = sorted(handle.tree().retired_clades())
        if json_out:
            print_json({"node": node, "ledger_id": row, "out_of_search": clade})
        else:
            typer.echo(f"retired node {node}; out of the search and the final choice: {', '.join(map(str, clade))}")
