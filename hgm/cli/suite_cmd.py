"""`hgm suite list|validate|prepare`: look at a task suite, check it, obtain its environments.

Also holds the helpers other commands use to open a suite and a backend (`open_suite`,
`select_tasks`, `open_backend`, `progress_bar`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from hgm.cli.common import fail, print_json

if TYPE_CHECKING:
    from evaluators.suite import EnvEvent, Suite
    from sandbox.api import Backend


def open_suite(ref: str) -> "Suite":
    """The suite `ref` with every task file checked, or a one-line error (exit 2)."""
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


def select_tasks(suite: "Suite", ids: Optional[list[str]]) -> list[Any]:
    """The tasks named by `ids` (repeatable or comma-separated; all when empty)."""
    from evaluators.suite import SuiteError

    names = [part.strip() for item in ids or [] for part in item.split(",") if part.strip()]
    try:
        return suite.select(names or None)
    except SuiteError as exc:
        fail(str(exc))


def open_backend(name: str) -> "Backend":
    from sandbox import get_backend
    from sandbox.api import SandboxError

    if name not in ("auto", "docker", "local"):
        fail(f"unknown --backend {name!r}; use auto, docker or local")
    try:
        return get_backend(name)  # type: ignore[arg-type]
    except SandboxError as exc:
        fail(f"{exc}; use --backend local or start a Docker engine")


def progress_bar():
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    )


def _mb(n: int | None) -> str:
    return f"{(n or 0) / 1e6:.1f} MB"


def _style(status: str) -> str:
    return {"ready": "green", "fallback": "yellow"}.get(status, "red")


def _prepare(
    suite_ref: str, instances: Optional[list[str]], registry: Optional[str], namespace: Optional[str], build: bool,
    task_repo: Optional[Path], workers: int, json_out: bool,
) -> None:
    from rich.console import Console
    from rich.table import Table

    from evaluators.prepare import prepare_suite

    suite = open_suite(suite_ref)
    is_swebench = suite.kind == "swebench"
    if not is_swebench and (registry or namespace or task_repo):
        fail(f"--registry, --namespace and --task-repo apply to SWE-bench suites; {suite.name} is a {suite.kind} "
             "suite, whose tasks are built from their Dockerfiles")
    if task_repo is not None and not (task_repo / "tasks").is_dir():
        fail(f"--task-repo {task_repo}: no tasks/ directory there (give a swebench task repo)")
    if is_swebench:
        suite.registry = registry or suite.registry  # type: ignore[attr-defined]
        suite.namespace = namespace or suite.namespace  # type: ignore[attr-defined]
        suite.build = build  # type: ignore[attr-defined]
        suite.task_repo = task_repo  # type: ignore[attr-defined]
    tasks = select_tasks(suite, instances)
    sandbox = open_backend("docker")
    console = Console(stderr=True)
    with progress_bar() as progress:
        overall = progress.add_task(f"preparing {suite.name}", total=len(tasks))
        current: dict[str, Any] = {}

        def on_event(event: "EnvEvent") -> None:
            bar = current.get(event.instance_id)
            if bar is None:
                bar = current[event.instance_id] = progress.add_task(event.instance_id, total=None)
            text = event.message
            if event.total:
                text += f" {_mb(event.done)}/{_mb(event.total)}"
                progress.update(bar, completed=event.done, total=event.total)
            progress.update(bar, description=f"{event.instance_id}: {text[:90]}")

        def on_done(item: Any) -> None:
            bar = current.pop(item.instance_id, None)
            if bar is not None:
                progress.remove_task(bar)
            if item.error:
                progress.console.print(f"[red]failed[/] {item.error}", highlight=False, soft_wrap=True)
            progress.advance(overall)

        results = prepare_suite(suite, sandbox, [t.instance_id for t in tasks], require_image=is_swebench,
                                workers=workers, on_event=on_event, on_done=on_done)
    failed = [r for r in results if r.status == "failed"]
    if json_out:
        print_json({"suite": suite.name, "ok": not failed, "tasks": [r.to_dict() for r in results]})
    else:
        table = Table(title=f"{suite.name}: {len(results) - len(failed)}/{len(results)} ready")
        table.add_column("task", no_wrap=True)
        for column in ("status", "how", "image", "seconds", "detail"):
            table.add_column(column)
        for r in results:
            env = r.environment
            table.add_row(r.instance_id, f"[{_style(r.status)}]{r.status}[/]", env.how if env else "-",
                          env.image if env else "-", f"{r.seconds:.1f}", r.error or (env.detail if env else ""))
        Console().print(table)
    if failed:
        console.print(f"{len(failed)} of {len(results)} task(s) have no environment")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `hgm suite list|validate|prepare`."""
    suite_app = typer.Typer(help="Task suites: list their tasks, validate them, obtain their images.",
                            no_args_is_help=True)

    @suite_app.command("validate")
    def validate_cmd(
        suite_ref: str = typer.Argument(..., metavar="NAME|PATH", help="Bundled suite name, task-repo dir, Polyglot checkout or SWE-bench file."),
        tasks: Optional[list[str]] = typer.Option(None, "--tasks", help="Only these task ids (repeatable)."),
        backend: str = typer.Option("auto", "--backend", help="auto, docker or local."),
        workers: int = typer.Option(1, "--workers", min=1, help="Tasks validated in parallel."),
        timeout: float = typer.Option(300.0, "--timeout", help="Seconds per test run."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Check every task: the gold patch resolves it and the empty patch does not.

        Each task's environment is obtained first (its image, pulled or built from its Dockerfile, or the hgm-base fallback); the `environment` lines under the table say which way each task went."""
        from rich.console import Console
        from rich.table import Table

        from evaluators.validate import validate_suite

        suite = open_suite(suite_ref)
        ids = [t.instance_id for t in select_tasks(suite, tasks)]
        sandbox = open_backend(backend)
        with progress_bar() as progress:
            bar = progress.add_task(f"validating {suite.name}", total=len(ids))
            checks = validate_suite(
                suite, sandbox, ids, workers=workers, timeout=timeout,
                on_done=lambda _check: progress.advance(bar),
                on_event=lambda event: progress.update(bar, description=f"{event.instance_id}: {event.message[:80]}"),
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
            groups: dict[str, list[str]] = {}
            for c in checks:
                gold = c.gold.outcome.value if c.gold else "-"
                empty = c.empty.outcome.value if c.empty else "-"
                seconds = sum(r.duration for r in (c.gold, c.empty) if r)
                valid = "[yellow]skipped[/]" if c.skipped else ("[green]yes[/]" if c.ok else "[red]NO[/]")
                table.add_row(c.instance_id, gold, empty, f"{seconds:.1f}", valid, c.skipped or c.problem)
                if c.environment:
                    groups.setdefault(c.environment.describe(), []).append(c.instance_id)
            console = Console()
            console.print(table)
            for where, ids in groups.items():  # which way each task's environment went
                shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
                console.print(f"environment {where}: {shown}", highlight=False, soft_wrap=True)
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

        suite = open_suite(suite_ref)
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

    @suite_app.command("prepare")
    def prepare_cmd(
        suite_ref: str = typer.Argument(..., metavar="SUITE", help="swebench:verified, a SWE-bench instance file, or a task-repo dir."),
        instances: Optional[list[str]] = typer.Option(None, "--instances", help="Only these instance ids (repeatable or comma-separated)."),
        registry: Optional[str] = typer.Option(None, "--registry", metavar="HOST[:PORT]", help="Pull from this registry instead of Docker Hub (also $HGM_SWEBENCH_REGISTRY)."),
        namespace: Optional[str] = typer.Option(None, "--namespace", help="Image namespace (default: the instance's image column, else swebench)."),
        build: bool = typer.Option(False, "--build", help="Build an instance's image from its Dockerfile when no prebuilt one can be pulled (needs --task-repo for SWE-bench files)."),
        task_repo: Optional[Path] = typer.Option(None, "--task-repo", help="swebench task repo holding tasks/<id>/Dockerfile, for --build."),
        workers: int = typer.Option(1, "--workers", min=1, help="Instances prepared in parallel."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Obtain each task's image ahead of a run: pull swebench's prebuilt instance image (`<namespace>/sweb.eval.x86_64.<id>`), or build it, and add hgm's uid-1000 layer.

        Task-repo suites build each task's Dockerfile (task directory as context). Images hgm pulls or builds count against a disk cap ($HGM_IMAGES_MAX_GB, default 50 GiB): the least recently used go first (`hgm sandbox prune`). Exit 1 if any task has no image."""
        _prepare(suite_ref, instances, registry, namespace, build, task_repo, workers, json_out)

    app.add_typer(suite_app, name="suite")
