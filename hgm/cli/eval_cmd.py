"""`hgm eval`: measure an agent on a task suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from hgm.cli.common import fail, print_json
from hgm.cli.suite_cmd import open_backend as _open_backend
from hgm.cli.suite_cmd import open_suite as _open_suite
from hgm.cli.suite_cmd import progress_bar as _progress
from hgm.cli.suite_cmd import select_tasks as _select

GATEWAY_MOUNT = "/hgm-gateway"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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

        from hgm.cli.runs import open_run

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
    """Add `hgm eval` (`hgm suite ...` lives in hgm.cli.suite_cmd)."""

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
        out: Optional[Path] = typer.Option(None, "--out", help="Directory for artifacts (default: a new temp dir)."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Run an agent on a suite's tasks and grade each patch in a fresh sandbox."""
        import tempfile
        import threading
        import time
        from concurrent.futures import ThreadPoolExecutor

        from rich.console import Console
        from rich.table import Table

        from evaluators.outcomes import Outcome, wilson_interval
        from sandbox.api import Mount

        if not model:
            fail("give --model (e.g. openai/gpt-4o-mini with its API key set, local/smollm2, or scripted:FILE)")
        suite = _open_suite(suite_ref)
        selected = _select(suite, tasks)
        sandbox = _open_backend(backend)
        suite.use_backend(sandbox)
        skipped = {t.instance_id: reason for t in selected if (reason := suite.skip_reason(t))}
        runnable = [t for t in selected if t.instance_id not in skipped]
        out_dir = (out or Path(tempfile.mkdtemp(prefix="hgm-eval-"))).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        agent_dir = _stage_agent(agent, out_dir / ".agent-stage" / "src")

        from hgm.evolve.improve import SandboxLLM
        from hgm.gateway import GatewayConfig, agent_env, start_gateway
        from hgm.loop.task_eval import SolveLimits, run_task

        spent: dict[str, list[float]] = {}
        lock = threading.Lock()

        def record(call: Any) -> None:
            task_id = call.tags.get("task", "")
            with lock:
                entry = spent.setdefault(task_id, [0, 0.0])
                entry[0] += call.prompt_tokens + call.completion_tokens
                entry[1] += call.cost or 0.0

        try:
            gateway = start_gateway(GatewayConfig(model=model), record)
        except ValueError as exc:
            fail(f"--model {model}: {exc}")
        limits = SolveLimits(max_steps=max_steps, solve_timeout_s=solve_timeout, test_timeout_s=test_timeout)

        def llm_for(task_id: str) -> Any:
            tags = {"purpose": "eval", "task": task_id}
            if sandbox.name == "docker":
                socket_dir, socket_name = Path(gateway.url).parent, Path(gateway.url).name
                env = agent_env(gateway, tags, url=f"{GATEWAY_MOUNT}/{socket_name}", path=CONTAINER_PATH, home="/tmp")
                return SandboxLLM(env=env, mounts=(Mount(str(socket_dir), GATEWAY_MOUNT, read_only=True),))
            return SandboxLLM(env=agent_env(gateway, tags))

        rows: list[dict[str, Any]] = []
        with gateway, _progress() as progress:
            bar = progress.add_task(f"{Path(agent).name} on {suite.name}", total=len(runnable))

            def one(task: Any) -> dict[str, Any]:
                started = time.monotonic()
                run = run_task(sandbox, suite, task, agent_dir, llm_for(task.instance_id),
                               out_dir / task.instance_id, limits)
                with lock:
                    tokens, cost = spent.get(task.instance_id, [0, 0.0])
                progress.advance(bar)
                return {"task": task.instance_id, "outcome": run.status, "detail": run.detail,
                        "seconds": round(time.monotonic() - started, 2), "tokens": int(tokens or run.tokens),
                        "cost": round(cost, 6), "artifacts": str(out_dir / task.instance_id)}

            with ThreadPoolExecutor(max_workers=workers) as pool:
                rows = list(pool.map(one, runnable))
        measured = [r for r in rows if Outcome(r["outcome"]).is_measurement]
        resolved = sum(r["outcome"] == Outcome.RESOLVED.value for r in measured)
        low, high = wilson_interval(resolved, len(measured))
        summary = {
            "suite": suite.name, "agent": agent, "model": model, "backend": sandbox.name,
            "tasks": rows, "skipped": skipped, "measured": len(measured), "resolved": resolved,
            "resolve_rate": resolved / len(measured) if measured else None, "ci95": [low, high],
            "infra_errors": len(rows) - len(measured),
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
                          f"(95% CI {low:.1%}-{high:.1%}); infra errors (unscored): {summary['infra_errors']}")
        else:
            console.print("no task was measured")
        console.print(f"artifacts: {out_dir}")
