"""`hgm suite validate` and `hgm eval`: check a task suite, measure an agent on it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from hgm.cli.common import fail, print_json

if TYPE_CHECKING:
    from evaluators.suite import Suite
    from sandbox.api import Backend

def _open_suite(ref: str) -> "Suite":
    from evaluators.repos import RepoError
    from evaluators.suite import SuiteError, load_suite
    from evaluators.task import TaskError

    try:
        suite = load_suite(ref)
        suite.tasks()  # validate every task file now: one clear error, nothing half-run
    except (SuiteError, TaskError, RepoError) as exc:
        fail(str(exc))
    except (OSError, ValueError) as exc:
        fail(f"cannot load suite {ref}: {exc}")
    return suite


def _select(suite: "Suite", ids: Optional[list[str]]) -> list[Any]:
    from evaluators.suite import SuiteError

    try:
        return suite.select(ids)
    except SuiteError as exc:
        fail(str(exc))


def _open_backend(name: str) -> "Backend":
    from sandbox import get_backend
    from sandbox.api import SandboxError

    if name not in ("auto", "docker", "local"):
        fail(f"unknown --backend {name!r}; use auto, docker or local")
    try:
        return get_backend(name)  # type: ignore[arg-type]
    except SandboxError as exc:
        fail(f"{exc}; use --backend local or start a Docker engine")


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    )


def _outcome_style(outcome: str) -> str:
    return {"resolved": "green", "error_infra": "magenta", "timeout": "yellow"}.get(outcome, "red")


def _stage_agent(agent: str, dest: Path) -> Path:
    """Copy the agent package named by PATH or RUN:NODE into `dest/agent`; return `dest`."""
    import shutil

    source: Path | None = None
    path = Path(agent).expanduser()
    if path.exists():
        source = path
    elif ":" in agent:
        run, _, node = agent.rpartition(":")
        if not node.isdigit():
            fail(f"--agent {agent}: NODE must be a node id (e.g. runs/r1:3)")
        from archive import ArchiveError

        from hgm.cli.runs_cmd import open_run

        checkout = dest.parent / "checkout"
        with open_run(run) as handle:
            try:
                handle.checkout(int(node), checkout)
            except (ArchiveError, KeyError, LookupError) as exc:
                fail(f"--agent {agent}: {exc}")
        source = checkout
    else:
        fail(f"--agent {agent}: no such directory (give a path or RUN:NODE)")
    assert source is not None
    if (source / "agent" / "__main__.py").is_file():
        package = source / "agent"
    elif (source / "__main__.py").is_file():
        package = source
    else:
        fail(f"--agent {agent}: no agent package there (expected agent/__main__.py)")
    shutil.copytree(package, dest / "agent", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def register(app: typer.Typer) -> None:
    """Add `hgm suite validate` and `hgm eval`."""
    suite_app = typer.Typer(help="Task suites: validate them, list their tasks.", no_args_is_help=True)

    @suite_app.command("validate")
    def validate_cmd(
        suite_ref: str = typer.Argument(..., metavar="NAME|PATH", help="Bundled suite name, task-repo dir, Polyglot checkout or SWE-bench file."),
        tasks: Optional[list[str]] = typer.Option(None, "--tasks", help="Only these task ids (repeatable)."),
        backend: str = typer.Option("auto", "--backend", help="auto, docker or local."),
        workers: int = typer.Option(1, "--workers", min=1, help="Tasks validated in parallel."),
        timeout: float = typer.Option(300.0, "--timeout", help="Seconds per test run."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Check every task: the gold patch resolves it and the empty patch does not."""
        from rich.console import Console
        from rich.table import Table

        from evaluators.validate import validate_suite

        suite = _open_suite(suite_ref)
        ids = [t.instance_id for t in _select(suite, tasks)]
        sandbox = _open_backend(backend)
        with _progress() as progress:
            bar = progress.add_task(f"validating {suite.name}", total=len(ids))
            checks = validate_suite(
                suite, sandbox, ids, workers=workers, timeout=timeout,
                on_done=lambda _check: progress.advance(bar),
            )
        failed = [c for c in checks if not c.ok]
        if json_out:
            print_json({"suite": suite.name, "backend": sandbox.name, "ok": not failed,
                        "tasks": [c.to_dict() for c in checks]})
        else:
            table = Table(title=f"{suite.name}: {len(checks) - len(failed)}/{len(checks)} valid ({sandbox.name} backend)")
            table.add_column("task", no_wrap=True)
            for column in ("gold", "empty", "seconds", "valid", "problem"):
                table.add_column(column)
            for c in checks:
                gold = c.gold.outcome.value if c.gold else "-"
                empty = c.empty.outcome.value if c.empty else "-"
                seconds = sum(r.duration for r in (c.gold, c.empty) if r)
                valid = "[yellow]skipped[/]" if c.skipped else ("[green]yes[/]" if c.ok else "[red]NO[/]")
                table.add_row(c.instance_id, gold, empty, f"{seconds:.1f}", valid, c.skipped or c.problem)
            Console().print(table)
        if failed:
            raise typer.Exit(1)

    @suite_app.command("list")
    def list_cmd(
        suite_ref: str = typer.Argument(..., metavar="NAME|PATH"),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """List a suite's tasks."""
        from rich.console import Console
        from rich.table import Table

        suite = _open_suite(suite_ref)
        rows = [{"instance_id": t.instance_id, "repo": t.repo, "fail_to_pass": len(t.FAIL_TO_PASS),
                 "pass_to_pass": len(t.PASS_TO_PASS), "skip": suite.skip_reason(t)} for t in suite.tasks()]
        if json_out:
            print_json({"suite": suite.name, "kind": suite.kind, "tasks": rows})
            return
        table = Table(title=f"{suite.name} ({suite.kind}, {len(rows)} tasks)")
        table.add_column("task", no_wrap=True)
        for column in ("repo", "F2P", "P2P", "note"):
            table.add_column(column)
        for r in rows:
            table.add_row(r["instance_id"], r["repo"], str(r["fail_to_pass"]), str(r["pass_to_pass"]), r["skip"] or "")
        Console().print(table)

    app.add_typer(suite_app, name="suite")

    @app.command("eval")
    def eval_cmd(
        agent: str = typer.Option(..., "--agent", help="Agent directory (holding agent/) or RUN:NODE of an archive."),
        suite_ref: str = typer.Option(..., "--suite", help="Bundled suite name or path."),
        tasks: Optional[list[str]] = typer.Option(None, "--tasks", help="Only these task ids (repeatable)."),
        model: Optional[str] = typer.Option(None, "--model", help="Gateway model spec, e.g. openai/gpt-4o-mini, local/smollm2, scripted:FILE."),
        workers: int = typer.Option(1, "--workers", min=1, help="Tasks run in parallel."),
        backend: str = typer.Option("auto", "--backend", help="auto, docker or local."),
        max_steps: int = typer.Option(6, "--max-steps", min=1, help="Agent steps per task."),
        solve_timeout: float = typer.Option(600.0, "--solve-timeout", help="Seconds the agent may run per task."),
        test_timeout: float = typer.Option(300.0, "--test-timeout", help="Seconds per test run in grading."),
        test_machinery: str = typer.Option(
            "strip", "--test-machinery",
            help="Patch parts touching test machinery (conftest.py, pytest config, *.pth, hidden test files): "
            "strip (default), reject (scored unresolved) or allow.",
        ),
        out: Optional[Path] = typer.Option(None, "--out", help="Directory for artifacts (default: a new temp dir)."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Run an agent on a suite's tasks and grade each patch in a fresh sandbox."""
        import tempfile
        from concurrent.futures import ThreadPoolExecutor

        from rich.console import Console
        from rich.table import Table

        from archive.stats import wilson_interval
        from evaluators.outcomes import Outcome

        if not model:
            fail("give --model (e.g. openai/gpt-4o-mini with its API key set, local/smollm2, or scripted:FILE)")
        from evaluators.machinery import MODES

        if test_machinery not in MODES:
            fail(f"unknown --test-machinery {test_machinery!r}; use one of {', '.join(MODES)}")
        suite = _open_suite(suite_ref)
        selected = _select(suite, tasks)
        sandbox = _open_backend(backend)
        suite.use_backend(sandbox)
        skipped = {t.instance_id: reason for t in selected if (reason := suite.skip_reason(t))}
        runnable = [t for t in selected if t.instance_id not in skipped]
        out_dir = (out or Path(tempfile.mkdtemp(prefix="hgm-eval-"))).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        agent_dir = _stage_agent(agent, out_dir / ".agent-stage" / "src")

        from hgm.evaluation.evaluate import EvalSetup, SolveLimits, evaluate
        from hgm.gateway import GatewayConfig, start_gateway
        from hgm.gateway.costs import CostBook

        costs = CostBook()
        try:
            gateway = start_gateway(GatewayConfig(model=model), costs)
        except ValueError as exc:
            fail(f"--model {model}: {exc}")
        limits = SolveLimits(max_steps=max_steps, solve_timeout_s=solve_timeout, test_timeout_s=test_timeout)
        setup = EvalSetup(backend=sandbox, suite=suite, access=gateway.access, costs=costs, limits=limits, root=out_dir,
                          test_machinery=test_machinery)

        rows: list[dict[str, Any]] = []
        with gateway, _progress() as progress:
            bar = progress.add_task(f"{Path(agent).name} on {suite.name}", total=len(runnable))

            def one(task: Any) -> dict[str, Any]:
                tags = {"purpose": "solve", "task": task.instance_id, "job": task.instance_id}
                record = evaluate(setup, 0, agent_dir, task, out_dir / task.instance_id, tags)
                progress.advance(bar)
                return {"task": task.instance_id, "outcome": record.status, "detail": record.detail,
                        "flags": list(record.flags),
                        "seconds": round(record.total_s or 0.0, 2), "tokens": record.tokens,
                        "cost": round(record.cost_usd, 6), "artifacts": str(out_dir / task.instance_id)}

            with ThreadPoolExecutor(max_workers=workers) as pool:
                rows = list(pool.map(one, runnable))
        measured = [r for r in rows if Outcome(r["outcome"]).is_measurement]
        resolved = sum(r["outcome"] == Outcome.RESOLVED.value for r in measured)
        low, high = wilson_interval(resolved, len(measured))
        summary = {
            "suite": suite.name, "agent": agent, "model": model, "backend": sandbox.name,
            "tasks": rows, "skipped": skipped, "measured": len(measured), "resolved": resolved,
            "resolve_rate": resolved / len(measured) if measured else None, "ci95": [low, high],
            "infra_errors": sum(r["outcome"] == Outcome.ERROR_INFRA.value for r in rows),
            "contaminated": sum(r["outcome"] == Outcome.CONTAMINATED.value for r in rows),
            "test_machinery": sum(bool(r["flags"]) for r in rows),
            "tokens": sum(r["tokens"] for r in rows), "cost": round(sum(r["cost"] for r in rows), 6),
            "out": str(out_dir),
        }
        if json_out:
            print_json(summary)
            return
        table = Table(title=f"{Path(agent).name} on {suite.name} ({model}, {sandbox.name} backend)")
        table.add_column("task", no_wrap=True)
        for column in ("outcome", "seconds", "tokens", "cost", "detail"):
            table.add_column(column)
        for r in rows:
            style = _outcome_style(r["outcome"])
            table.add_row(r["task"], f"[{style}]{r['outcome']}[/]", f"{r['seconds']:.1f}", str(r["tokens"]),
                          f"${r['cost']:.4f}", r["detail"][:60])
        for task_id, reason in skipped.items():
            table.add_row(task_id, "[yellow]skipped[/]", "-", "-", "-", reason or "")
        console = Console()
        console.print(table)
        if measured:
            console.print(f"resolved {resolved}/{len(measured)} = {resolved / len(measured):.1%} "
                          f"(95% CI {low:.1%}-{high:.1%}); infra errors (unscored): {summary['infra_errors']}; "
                          f"contaminated (unscored): {summary['contaminated']}; "
                          f"patches touching test machinery ({test_machinery}): {summary['test_machinery']}")
        else:
            console.print("no task was measured")
        console.print(f"artifacts: {out_dir}")
