"""`hgm eval`: measure an agent on a task suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from hgm.cli.common import fail, print_json
from hgm.cli.suite_cmd import open_backend, open_suite, progress_bar, select_tasks


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


def attempts_summary(attempts: Any) -> dict[str, Any]:
    """Per-task JSON fields of an evaluation that made several attempts ({} when it made one)."""
    if not attempts:
        return {}
    selected = next((a for a in attempts if a.selected), None)
    return {"attempts": [{"index": a.index, "generation": a.generation, "operator": a.operator,
                          "parents": list(a.parents), "exit_reason": a.exit_reason, "tokens": a.tokens,
                          "selected": a.selected, "valid": bool(a.features.get("valid")), "detail": a.detail}
                         for a in attempts],
            "selected": selected.index if selected else None}


def register(app: typer.Typer) -> None:
    """Add `hgm eval` (`hgm suite ...` lives in hgm.cli.suite_cmd)."""

    @app.command("eval")
    def eval_cmd(
        agent: str = typer.Option(..., "--agent", help="Agent directory (holding agent/) or RUN:NODE of an archive."),
        suite_ref: str = typer.Option(..., "--suite", help="Bundled suite name or path."),
        tasks: Optional[list[str]] = typer.Option(None, "--tasks", help="Only these task ids (repeatable)."),
        model: Optional[str] = typer.Option(None, "--model", help="Gateway model spec, e.g. openai/gpt-4o-mini, local/smollm2, scripted:FILE."),
        api_base: Optional[str] = typer.Option(None, "--api-base", help="OpenAI-compatible server for --model (vLLM, Ollama, llama.cpp)."),
        workers: int = typer.Option(1, "--workers", min=1, help="Tasks run in parallel."),
        backend: str = typer.Option("auto", "--backend", help="auto, docker or local."),
        agent_profile: str = typer.Option("auto", "--agent-profile", help="Agent limits: auto (by model), local or provider (as in `hgm run`)."),
        max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Agent steps per task (default: the profile's)."),
        solve_timeout: Optional[float] = typer.Option(None, "--solve-timeout", help="Seconds the agent may run per task."),
        test_timeout: Optional[float] = typer.Option(None, "--test-timeout", help="Seconds per test run in grading."),
        attempt_usd: Optional[float] = typer.Option(None, "--attempt-usd", help="Dollars one agent attempt may spend."),
        attempts: Optional[int] = typer.Option(None, "--attempts", min=1, help="Attempts per generation (default 1)."),
        generations: Optional[int] = typer.Option(
            None, "--generations", min=1,
            help="Generations of attempts (default 1). Later generations get guidance that operators (revise, "
                 "recombine, refine) wrote from the earlier attempts; one patch is selected without the hidden "
                 "tests and graded."),
        preset: Optional[str] = typer.Option(None, "--preset", help="single (1 x 1) or evolve (5 attempts x 3 generations)."),
        judge: bool = typer.Option(False, "--judge", help="Let the model pick among the best few candidates."),
        eval_tokens: Optional[int] = typer.Option(None, "--eval-tokens", min=1, help="Tokens one task evaluation may use, all attempts (hard)."),
        eval_usd: Optional[float] = typer.Option(None, "--eval-usd", help="Dollars one task evaluation may spend, all attempts (hard)."),
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
        from hgm.config import ConfigError, build_config

        try:  # the same limits `hgm run` would give this model
            config = build_config(overrides={"model": model, "agent": {
                "profile": agent_profile, "solve_step_limit": max_steps, "solve_timeout_s": solve_timeout,
                "test_timeout_s": test_timeout, "attempt_usd": attempt_usd}, "evaluation": {
                "preset": preset, "attempts": attempts, "generations": generations, "judge": judge or None,
                "max_tokens": eval_tokens, "max_usd": eval_usd}})
        except ConfigError as exc:
            fail(str(exc))
        agent_limits, evaluation = config.agent, config.evaluation
        from hgm.cli.run_cmd import check_model_or_fail

        check_model_or_fail(model, api_base)
        suite = open_suite(suite_ref)
        selected = select_tasks(suite, tasks)
        sandbox = open_backend(backend)
        suite.use_backend(sandbox)
        skipped = {t.instance_id: reason for t in selected if (reason := suite.skip_reason(t))}
        runnable = [t for t in selected if t.instance_id not in skipped]
        out_dir = (out or Path(tempfile.mkdtemp(prefix="hgm-eval-"))).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        agent_dir = _stage_agent(agent, out_dir / ".agent-stage" / "src")

        from hgm.evaluation.attempts import AttemptsPolicy
        from hgm.evaluation.evaluate import EvalSetup, SolveLimits, evaluate
        from hgm.gateway import start_gateway
        from hgm.gateway.chat import gateway_chat
        from hgm.gateway.config import run_gateway_config
        from hgm.gateway.costs import CostBook

        costs = CostBook()
        try:
            gateway = start_gateway(run_gateway_config(
                model, api_base=api_base, attempt_usd=agent_limits.attempt_usd,
                evaluation_tokens=evaluation.max_tokens, evaluation_usd=evaluation.max_usd), costs)
        except ValueError as exc:
            fail(f"--model {model}: {exc}")
        limits = SolveLimits(max_steps=agent_limits.solve_step_limit, solve_timeout_s=agent_limits.solve_timeout_s,
                             test_timeout_s=agent_limits.test_timeout_s)
        environments: dict[str, str] = {}

        def note_environment(task: Any, environment: Any) -> None:
            environments[task.instance_id] = environment.describe()

        setup = EvalSetup(backend=sandbox, suite=suite, access=gateway.access, costs=costs, limits=limits, root=out_dir,
                          on_environment=note_environment, test_machinery=test_machinery,
                          attempts=AttemptsPolicy.from_config(evaluation, model),
                          chat=gateway_chat(gateway.url, gateway.config.alias, agent_limits.solve_timeout_s))

        rows: list[dict[str, Any]] = []
        with gateway, progress_bar() as progress:
            bar = progress.add_task(f"{Path(agent).name} on {suite.name}", total=len(runnable))

            def one(task: Any) -> dict[str, Any]:
                tags = {"purpose": "solve", "task": task.instance_id, "job": task.instance_id}
                record = evaluate(setup, 0, agent_dir, task, out_dir / task.instance_id, tags)
                progress.advance(bar)
                return {"task": task.instance_id, "outcome": record.status, "detail": record.detail,
                        "environment": environments.get(task.instance_id, ""),
                        "flags": list(record.flags),
                        "seconds": round(record.total_s or 0.0, 2), "tokens": record.tokens,
                        "cost": round(record.cost_usd, 6), "artifacts": str(out_dir / task.instance_id),
                        **attempts_summary(record.attempts)}

            with ThreadPoolExecutor(max_workers=workers) as pool:
                rows = list(pool.map(one, runnable))
        measured = [r for r in rows if Outcome(r["outcome"]).is_measurement]
        resolved = sum(r["outcome"] == Outcome.RESOLVED.value for r in measured)
        low, high = wilson_interval(resolved, len(measured))
        summary = {
            "suite": suite.name, "agent": agent, "model": model, "api_base": api_base, "backend": sandbox.name,
            "agent_limits": agent_limits.model_dump(mode="json"), "evaluation": evaluation.model_dump(mode="json"),
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
        shape = f", {evaluation.attempts} x {evaluation.generations} attempts" if evaluation.several else ""
        table = Table(title=f"{Path(agent).name} on {suite.name} ({model}, {sandbox.name} backend{shape})")
        table.add_column("task", no_wrap=True)
        columns = ("outcome", "seconds", "tokens", "cost", *(("selected",) if evaluation.several else ()), "detail")
        for column in columns:
            table.add_column(column)
        for r in rows:
            style = _outcome_style(r["outcome"])
            chosen = [a for a in r.get("attempts", []) if a["selected"]]
            selected = (f"{chosen[0]['index']} of {len(r['attempts'])} ({chosen[0]['operator']})",) if chosen else (
                ("-",) if evaluation.several else ())
            table.add_row(r["task"], f"[{style}]{r['outcome']}[/]", f"{r['seconds']:.1f}", str(r["tokens"]),
                          f"${r['cost']:.4f}", *selected, r["detail"][:60])
        for task_id, reason in skipped.items():
            table.add_row(task_id, "[yellow]skipped[/]", *["-"] * (len(columns) - 2), reason or "")
        console = Console()
        console.print(table)
        if measured:
            console.print(f"resolved {resolved}/{len(measured)} = {resolved / len(measured):.1%} "
                          f"(95% CI {low:.1%}-{high:.1%}); infra errors (unscored): {summary['infra_errors']}; "
                          f"contaminated (unscored): {summary['contaminated']}; "
                          f"patches touching test machinery ({test_machinery}): {summary['test_machinery']}")
        else:
            console.print("no task was measured")
        prepared = sorted({env for env in environments.values() if not env.startswith(("image ", "base "))})
        for env in prepared:  # environments obtained for this evaluation: pulled, built or fallen back
            console.print(f"environment {env}")
        console.print(f"artifacts: {out_dir}")
