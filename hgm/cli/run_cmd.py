"""`hgm run`, `hgm resume RUN` and `hgm best RUN`: start, continue and read an evolution run.

Heavy modules (archive, sandbox, gateway, numpy) are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from hgm.cli.common import fail, print_json

EXIT_INTERRUPTED = 130
EXIT_FAILED = 1


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"run {summary['run_dir']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary.get("evaluation_outcomes", {}).items())) or "-"
    table.add_row("ended", f"{summary.get('stop_reason', '-')} (status {summary['status']})")
    table.add_row("evaluations", f"{summary['evaluations']} measured / budget {summary.get('budget_evals', '-')} ({outcomes})")
    table.add_row("nodes", f"{summary['nodes']} (expansions: {summary['expansions_ok']} ok, "
                  f"{summary['expansions_failed']} failed, {summary['expansions_abandoned']} abandoned)")
    guards = summary.get("guards") or {}
    if any(guards.values()):
        table.add_row("guards", f"{guards.get('contaminated', 0)} contaminated (not scored), "
                      f"{guards.get('test_machinery', 0)} touched test machinery, "
                      f"{guards.get('children_rejected', 0)} children rejected by the gate")
    memory = summary.get("memory") or {}
    if memory.get("items") or memory.get("from_other_runs"):
        table.add_row("memory", f"{memory['items']} items distilled ({memory['helped']} helped, {memory['hurt']} hurt, "
                      f"{memory['unproven']} unproven; {memory['fallback']} in fallback words), "
                      f"{memory['from_other_runs']} shown from other runs")
    table.add_row("spent", f"${summary['cost_usd']:.4f}, {summary['tokens']:,} tokens in {summary['llm_calls']} calls")
    table.add_row("ships", _best_text(summary.get("best")))
    console.print(table)


def _best_text(best: dict[str, Any] | None) -> str:
    if not best:
        return "no node evaluated yet"
    lo, hi = best["interval95"]
    text = (f"node {best['node']}: {best['successes']}/{best['evals']} resolved "
            f"(mean {best['mean']:.2f}, 95% interval [{lo:.2f}, {hi:.2f}]; ")
    if best.get("chosen_by") == "confirmation":
        return text + confirmation_text(best["confirmation"]) + ")"
    text += f"chosen by the {best['rule']} rule, score {best['score']:.3f})"
    status = best.get("confirmation")
    if status is not None:
        text += "; " + confirmation_text(status)
    return text


def confirmation_text(status: dict[str, Any]) -> str:
    """One line on a run's confirmation on held-out tasks (see `hgm.search.confirm`)."""
    h = len(status["holdout_tasks"])
    if status["status"] == "waiting":
        return f"confirmation on {h} held-out tasks: waits for the search to end"
    cands = ", ".join(f"node {c['node']} {c['holdout_resolved']}/{c['holdout_evals']}" for c in status["candidates"])
    if status["status"] != "done":
        return f"confirmation on {h} held-out tasks running: {cands}"
    parts = [f"chosen by confirmation on {h} held-out tasks among the top {len(status['candidates'])} "
             f"by the {status['rule']} rule ({cands})"]
    for label, key in (("parent", "vs_parent"), ("root", "vs_root")):
        test = status.get(key)
        if test is not None:
            parts.append(f"vs {label} node {test['node']} ({test['holdout_resolved']}/{h}): "
                         f"{test['wins']} tasks won, {test['losses']} lost, exact McNemar p = {test['p_value']:.3f}")
    return "; ".join(parts)


def _exit_code(reason: str) -> int:
    if reason == "interrupted":
        return EXIT_INTERRUPTED
    if reason in ("infra_errors", "internal_error", "provider_errors", "disk_full"):
        return EXIT_FAILED
    return 0


def check_model_or_fail(model: str, api_base: str | None) -> None:
    """One tiny call to the model before anything is written; a one-line error (exit 2) if it fails."""
    from hgm.gateway.preflight import ModelCheckError, check_model

    try:
        check_model(model, api_base)
    except ModelCheckError as exc:
        fail(str(exc))


def check_bank_or_fail(path: Path) -> None:
    """A one-line error (exit 2) when `path` exists and is not a memory bank, before anything is written."""
    from archive.errors import ArchiveError
    from archive.memory import MemoryBank

    try:
        MemoryBank.check(path)
    except ArchiveError as exc:
        fail(str(exc))


def _session(run: Any, config: Any, workers: int | None, json_out: bool, discard_on_setup_error: bool = False) -> int:
    import shutil

    from hgm.loop.session import RunSetupError, run_session

    from hgm.cli.display import LiveDisplay

    display = LiveDisplay(config.policy.final_rule, config.policy.final_quantile)
    display.start()
    try:
        result = run_session(run, config, workers=workers, on_tick=display)
    except KeyboardInterrupt:
        display.stop()
        fail(f"interrupted before the search started; continue with: hgm resume {run.path}", code=EXIT_INTERRUPTED)
    except RunSetupError as exc:
        display.stop()
        if discard_on_setup_error:  # a run that never started leaves nothing behind
            run.close()
            shutil.rmtree(run.path, ignore_errors=True)
        fail(str(exc))
    finally:
        display.stop()
    for note in result.messages:
        typer.echo(note, err=True)
    reason = result.outcome.stop_reason
    errors = list(result.outcome.errors)
    if reason == "disk_full" and errors:  # its own one-line error, not a warning
        typer.echo(f"error: {errors.pop(0)}", err=True)
    for error in errors[:5]:
        typer.echo(f"warning: {error.strip().splitlines()[-1] if error.strip() else error}", err=True)
    if json_out:
        print_json(result.summary)
    else:
        _print_summary(result.summary)
    if reason in ("interrupted", "provider_errors", "infra_errors"):
        why = {"interrupted": "stopped", "provider_errors": "stopped: the model provider keeps failing (see the warning above); fix it, then",
               "infra_errors": "stopped: the sandboxes keep failing (see the warning above); fix it, then"}[reason]
        typer.echo(f"{why} continue with: hgm resume {result.summary['run_dir']}", err=True)
    return _exit_code(reason)


def _check_executor(config: Any) -> None:
    """Ray settings only with the Ray executor, and Ray installed for it (one line, exit 2)."""
    if config.executor != "ray":
        if config.ray.address is not None:
            fail("--ray-address needs --executor ray")
        return
    from hgm.loop.ray_cluster import ray_version

    if ray_version() is None:
        fail("--executor ray needs Ray on this machine and every node: pip install 'hgm[ray]'")


def _where_jobs_run(config: Any, executor: str | None, ray_address: str | None) -> Any:
    """`hgm resume`'s overrides of where jobs run (they change no result, only where it is made)."""
    if executor not in (None, "threads", "ray"):
        fail(f"--executor must be threads or ray, not {executor!r}")
    ray = config.ray if ray_address is None else config.ray.model_copy(update={"address": ray_address})
    config = config.model_copy(update={"executor": executor or config.executor, "ray": ray})
    _check_executor(config)
    return config


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where the run goes (default ./runs/<timestamp>)."),
        config_file: Optional[Path] = typer.Option(None, "--config", help="run.toml with any of the options below."),
        suite: Optional[str] = typer.Option(None, "--suite", help="Task suite: bundled name (mini), path, or swebench:NAME."),
        tasks: Optional[str] = typer.Option(None, "--tasks", help="Comma-separated task ids (default: all)."),
        max_tasks: Optional[int] = typer.Option(None, "--max-tasks", help="Use only the first N tasks."),
        model: Optional[str] = typer.Option(None, "--model", help="local/smollm2, openai/..., hosted_vllm/..., ollama/..., scripted:FILE, replay:DIR."),
        api_base: Optional[str] = typer.Option(
            None, "--api-base", help="OpenAI-compatible server for --model (vLLM, Ollama, llama.cpp), e.g. http://127.0.0.1:8000/v1."
        ),
        policy: Optional[str] = typer.Option(None, "--policy", help="hgm | dgm | greedy | uniform."),
        budget_evals: Optional[int] = typer.Option(None, "--budget-evals", help="Task evaluations in all."),
        budget_usd: Optional[float] = typer.Option(None, "--budget-usd", help="Dollars of model calls in all."),
        budget_time: Optional[float] = typer.Option(None, "--budget-time", help="Wall-clock seconds in all."),
        workers: Optional[int] = typer.Option(None, "--workers", help="Parallel workers (default: CPU cores)."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (runs with a scripted model repeat)."),
        seed_evals: Optional[int] = typer.Option(None, "--seed-evals", help="Measure the seed on N tasks first."),
        sandbox: Optional[str] = typer.Option(None, "--sandbox", help="auto | docker | local."),
        agent_profile: Optional[str] = typer.Option(
            None, "--agent-profile", help="Agent limits: auto (by model), local (4 steps, 300 s) or provider (100 steps, 1800 s, $3 per attempt)."
        ),
        solve_steps: Optional[int] = typer.Option(None, "--solve-steps", help="Agent steps per task evaluation (default: the profile's)."),
        improve_steps: Optional[int] = typer.Option(None, "--improve-steps", help="Agent steps per self-improvement (default: the profile's)."),
        solve_timeout: Optional[float] = typer.Option(None, "--solve-timeout", help="Seconds an agent may take on a task."),
        test_timeout: Optional[float] = typer.Option(None, "--test-timeout", help="Seconds per test run (grading and the agent's own tests)."),
        attempt_usd: Optional[float] = typer.Option(None, "--attempt-usd", help="Dollars one agent attempt (of an evaluation) or one expansion may spend."),
        include_test_patch: Optional[bool] = typer.Option(
            None, "--include-test-patch/--no-test-patch", help="Show hidden tests to the diagnosis (leaks them)."
        ),
        test_machinery: Optional[str] = typer.Option(
            None, "--test-machinery",
            help="Patch parts touching test machinery (conftest.py, pytest config, *.pth, hidden test files): "
            "strip (default), reject (scored unresolved) or allow.",
        ),
        executor: Optional[str] = typer.Option(
            None, "--executor", help="Where jobs run: threads (this machine, default) or ray (a Ray cluster's Docker hosts)."
        ),
        ray_address: Optional[str] = typer.Option(
            None, "--ray-address", metavar="auto|HOST:PORT",
            help="With --executor ray: the cluster to join (default: a private one-node cluster on this machine).",
        ),
        registry: Optional[str] = typer.Option(
            None, "--registry", metavar="HOST[:PORT]", help="Pull task images from this registry (SWE-bench suites; as in `hgm suite prepare`)."
        ),
        memory: Optional[Path] = typer.Option(
            None, "--memory", help="Memory bank file shared between runs: earlier runs' lessons are shown to this "
            "run's diagnoses and its own are appended (created if missing).",
        ),
        no_memory: bool = typer.Option(
            False, "--no-memory", help="No lessons memory: expansions neither distil items nor see earlier ones."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
    ) -> None:
        """Start an evolution run (no options: the offline default on the bundled mini suite)."""
        from hgm.config import ConfigError, build_config, default_run_dir
        from hgm.loop.session import RunSetupError, create_run

        overrides: dict[str, Any] = {
            "suite": suite,
            "tasks": [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None,
            "max_tasks": max_tasks,
            "model": model,
            "api_base": api_base,
            "workers": workers,
            "seed": seed,
            "seed_evals": seed_evals,
            "sandbox": sandbox,
            "executor": executor,
            "ray": {"address": ray_address},
            "registry": registry,
            "policy": {"name": policy},
            "budget": {"evals": budget_evals, "usd": budget_usd, "wall_clock_s": budget_time},
            "evolve": {"include_test_patch": include_test_patch},
            "agent": {"profile": agent_profile, "solve_step_limit": solve_steps, "improve_step_limit": improve_steps,
                      "solve_timeout_s": solve_timeout, "test_timeout_s": test_timeout, "attempt_usd": attempt_usd},
            "grading": {"test_machinery": test_machinery},
            "memory": {"bank": str(memory.resolve()) if memory is not None else None,
                       "enabled": False if no_memory else None},
        }
        if memory is not None and no_memory:
            fail("--memory and --no-memory contradict each other; give one")
        if config_file is not None and not config_file.is_file():
            fail(f"config file {config_file} does not exist; pass an existing run.toml")
        try:
            config = build_config(config_file, overrides)
        except ConfigError as exc:
            fail(str(exc))
        _check_executor(config)
        if config.memory.enabled and config.memory.bank:
            bank = Path(config.memory.bank).resolve()  # frozen absolute: `hgm resume` may run elsewhere
            config = config.model_copy(update={"memory": config.memory.model_copy(update={"bank": str(bank)})})
            check_bank_or_fail(bank)
        target = run_dir or default_run_dir()
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            if (target / "hgm.db").is_file():
                fail(f"{target} already holds a run; continue it with `hgm resume {target}` or choose a new --run-dir")
            fail(f"{target} already exists and is not empty; choose a new --run-dir")
        from hgm.loop.session import load_tasks

        try:  # check suite and policy before anything is written
            load_tasks(config)
            from hgm.policies import make_policy

            make_policy(config.policy.name, config.policy.policy_options(config.seed))
        except RunSetupError as exc:
            fail(str(exc))
        except (TypeError, ValueError) as exc:
            fail(f"policy {config.policy.name}: {exc}")
        check_model_or_fail(config.model, config.api_base)
        try:
            run = create_run(config, target)
        except RunSetupError as exc:
            fail(str(exc))
        typer.echo(f"run directory: {target}", err=True)
        # with Ray, an unset --workers means "the cluster's slots", not this machine's cores
        chosen = config.workers if "workers" in config.model_fields_set or config.executor == "threads" else None
        try:
            code = _session(run, config, chosen, json_out, discard_on_setup_error=True)
        finally:
            run.close()
        raise typer.Exit(code)

    @app.command("resume")
    def resume_cmd(
        run: str = typer.Argument(..., help="Run directory (or its name under ./runs)."),
        workers: Optional[int] = typer.Option(None, "--workers", help="Parallel workers (default: as configured; with Ray: the cluster's slots)."),
        executor: Optional[str] = typer.Option(None, "--executor", help="threads | ray (default: as the run was started)."),
        ray_address: Optional[str] = typer.Option(
            None, "--ray-address", metavar="auto|HOST:PORT", help="With Ray: the cluster to join (default: as the run was started)."
        ),
        budget_evals: Optional[int] = typer.Option(
            None, "--budget-evals", help="Raise the run's evaluation budget to N in all (continues a finished run)."),
        budget_usd: Optional[float] = typer.Option(None, "--budget-usd", help="Raise the run's dollar budget (in all)."),
        budget_time: Optional[float] = typer.Option(None, "--budget-time", help="Raise the run's wall-clock budget (seconds in all)."),
        accept_loss: bool = typer.Option(
            False, "--accept-loss", help="Continue a run whose database lost records (its hgm.db-wal was deleted)."),
        json_out: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
    ) -> None:
        """Continue a stopped or crashed run with its own config; work in flight is redone.

        Leftovers of a killed session (sandboxes, temp files, sockets) are removed first.
        """
        from hgm.cli.runs_cmd import resolve_run_dir
        from hgm.loop.budgets import BudgetError, extend_budgets
        from hgm.loop.session import RunSetupError, check_free_space, open_for_resume

        for flag, value in (("--budget-evals", budget_evals), ("--budget-usd", budget_usd), ("--budget-time", budget_time)):
            if value is not None and value <= 0:
                fail(f"{flag} must be positive (got {value:g})")
        if workers is not None and workers < 1:
            fail(f"--workers must be at least 1 (got {workers})")
        try:
            handle, config = open_for_resume(resolve_run_dir(run), accept_loss=accept_loss)
        except RunSetupError as exc:
            fail(str(exc))
        try:
            config = _where_jobs_run(config, executor, ray_address)
            check_free_space(handle.path, config)
            check_model_or_fail(config.model, config.api_base)
            config = extend_budgets(handle, config, evals=budget_evals, usd=budget_usd, wall_clock_s=budget_time)
        except (RunSetupError, BudgetError) as exc:
            handle.close()
            fail(str(exc))
        except typer.Exit:
            handle.close()
            raise
        typer.echo(f"resuming {handle.path}", err=True)
        try:
            code = _session(handle, config, workers, json_out)
        finally:
            handle.close()
        raise typer.Exit(code)

    @app.command("best")
    def best_cmd(
        run: str = typer.Argument(..., help="Run directory (or its name under ./runs)."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """The node this run ships: its confirmation's pick on held-out tasks once done, else its final-choice rule's."""
        from hgm.cli.runs_cmd import open_run
        from hgm.search.report import best_node

        with open_run(run) as handle:
            best = best_node(handle)
        if json_out:
            print_json(best)
        elif best is None:
            fail("no node of this run has been evaluated yet")
        else:
            typer.echo(_best_text(best))
