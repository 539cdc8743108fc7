"""`hgm simulate`: compare search policies in a simulated world (no LLM, no sandbox)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hgm.cli.common import fail, print_json

POLICIES = ("hgm", "dgm", "greedy", "uniform")
RULES = ("raw-mean", "best-belief", "lineage")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)


def simulate(
    policy: Annotated[
        list[str] | None, typer.Option("--policy", "-p", help="hgm|dgm|greedy|uniform; repeat for several (default: all)")
    ] = None,
    landscape: Annotated[str, typer.Option(help="Shipped landscape name or a .toml file")] = "default",
    budget_evals: Annotated[int, typer.Option(help="Task evaluations per run")] = 150,
    seeds: Annotated[int, typer.Option(help="Runs per policy (seeds seed-start .. seed-start+seeds-1; every policy on the same worlds)")] = 20,
    seed_start: Annotated[int, typer.Option(help="First seed")] = 0,
    workers: Annotated[int, typer.Option(help="Simulated concurrent workers (virtual time)")] = 1,
    config_file: Annotated[Path | None, typer.Option("--config", help="run.toml: its \\[policy] settings, exactly as `hgm run` reads them")] = None,
    alpha: Annotated[float | None, typer.Option(help="Expansion exponent (hgm, greedy, uniform)")] = None,
    beta: Annotated[float | None, typer.Option(help="Cool-down exponent (hgm, with --cooldown)")] = None,
    cooldown: Annotated[bool | None, typer.Option("--cooldown/--no-cooldown", help="HGM cool-down")] = None,
    pseudo_evals: Annotated[float | None, typer.Option(help="HGM cap on a node's own measures in its clade")] = None,
    eval_random_level: Annotated[float | None, typer.Option(help="Probability of a random unseen task")] = None,
    failed_expansions: Annotated[str | None, typer.Option(help="allowance|count|ignore: the brake on failed expansions")] = None,
    confirm: Annotated[bool | None, typer.Option("--confirm/--no-confirm", help="Confirm the final pick on held-out tasks")] = None,
    set_options: Annotated[
        list[str] | None, typer.Option("--set", help="Any policy setting as KEY=VALUE, e.g. greedy_rule=mean, confirm_share=0.2")
    ] = None,
    selection_rule: Annotated[str | None, typer.Option("--selection", help="Final choice: raw-mean|best-belief|lineage")] = None,
    jobs: Annotated[int, typer.Option(help="Processes to run seeds in parallel")] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print results as JSON")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG: chosen agent's skill vs evaluations")] = None,
) -> None:
    """Run policies on a simulated landscape; report the shipped agent's true skill, best in tree, regret.

    Policies get the settings `hgm run` would use (defaults, --config, flags); every policy runs on the same seeds (paired).
    """
    names = list(dict.fromkeys(policy or POLICIES))
    bad = [n for n in names if n not in POLICIES]
    if bad:
        fail(f"unknown policy {bad[0]!r}; use one of {', '.join(POLICIES)}")
    if selection_rule is not None and selection_rule not in RULES:
        fail(f"unknown selection rule {selection_rule!r}; use one of {', '.join(RULES)}")
    for label, value, low in (("--budget-evals", budget_evals, 1), ("--seeds", seeds, 1), ("--workers", workers, 1), ("--jobs", jobs, 1)):
        if value < low:
            fail(f"{label} must be at least {low} (got {value})")
    if plot is not None and plot.suffix.lower() != ".png":
        fail(f"--plot must name a .png file (got {plot})")
    if plot is not None and not plot.parent.exists():
        fail(f"folder {plot.parent} for --plot does not exist; create it first")
    if config_file is not None and not config_file.is_file():
        fail(f"config file {config_file} does not exist; pass an existing run.toml")

    from hgm.sim.landscape import LandscapeError, load_landscape

    try:
        world = load_landscape(landscape)
    except LandscapeError as exc:
        fail(str(exc))
    named = {
        "alpha": alpha, "beta": beta, "cooldown": cooldown, "n_pseudo_descendant_evals": pseudo_evals,
        "eval_random_level": eval_random_level, "failed_expansions": failed_expansions, "confirm": confirm,
        "final_rule": selection_rule,
    }
    settings = _settings(config_file, named, [_parse_setting(item) for item in set_options or []], names)

    from hgm.sim import report

    interrupted: report.SimulationInterrupted | None = None
    try:
        results = _run(world, names, budget_evals, range(seed_start, seed_start + seeds), workers, settings, jobs, json_out)
    except report.SimulationInterrupted as exc:
        interrupted = exc
        # keep the seeds every policy finished: the comparisons stay paired
        common = set.intersection(*(set(r.seed for r in exc.results[n]) for n in names))
        results = {n: [r for r in exc.results[n] if r.seed in common] for n in names}
        if not common:
            fail(f"interrupted before every policy finished a seed ({exc.done} of {exc.total} runs)", code=130)
        typer.echo(f"interrupted: {exc.done} of {exc.total} runs finished; the results below are of the "
                   f"{len(common)} seed(s) every policy finished", err=True)

    rule = settings.final_rule
    summaries = {name: report.summarize(results[name], rule) for name in names}
    curves = {name: report.curve(results[name], rule) for name in names}
    differences = {f"{names[0]} - {other}": report.paired_difference(results[names[0]], results[other]) for other in names[1:]}
    if plot is not None:
        report.plot_curves(curves, str(plot), f"{world.name}: {seeds} seeds, {workers} worker(s), rule {rule}")
    if json_out:
        print_json(
            {
                "landscape": world.name,
                "budget_evals": budget_evals,
                "seeds": seeds,
                "workers": workers,
                "selection": rule,
                "settings": settings.model_dump(mode="json"),
                "options": dict(settings.options),
                "policies": {n: {**summaries[n], "curve": curves[n]} for n in names},
                "paired_differences": differences,
                "plot": str(plot) if plot else None,
                **({"interrupted": {"done": interrupted.done, "total": interrupted.total}} if interrupted else {}),
            }
        )
    else:
        shown = seeds if interrupted is None else len(results[names[0]])
        _print_tables(world.name, budget_evals, shown, workers, rule, summaries, differences)
        if plot is not None:
            typer.echo(f"plot written to {plot}")
    if interrupted is not None:
        raise typer.Exit(130)


def _settings(config_file: Path | None, named: dict[str, Any], extra: list[tuple[str, Any]], names: list[str]) -> Any:
    """The run's policy settings: defaults, then the [policy] table of `config_file`, then the flags.

    KEY=VALUE pairs set a named setting when `PolicyConfig` has one, else pass through to the
    policies as options; each must be known to `PolicyConfig` or a selected policy.
    """
    from hgm.config import ConfigError, PolicyConfig, build_config
    from hgm.policies.registry import make_policy, policy_options

    fields = set(PolicyConfig.model_fields) - {"name", "options"}
    known = {o for n in names for o in policy_options(n)}
    policy: dict[str, Any] = {k: v for k, v in named.items() if v is not None}
    options: dict[str, Any] = {}
    for key, value in extra:
        if key in fields:
            policy[key] = value
        elif key in known:
            options[key] = value
        else:
            fail(f"no setting or selected policy option {key}; settings: {', '.join(sorted(fields))}; "
                 f"options of {', '.join(names)}: {', '.join(sorted(known))}")
    if options:
        policy["options"] = options
    try:
        settings = build_config(config_file, {"policy": policy}).policy
    except ConfigError as exc:
        fail(str(exc))
    for name in names:
        try:
            make_policy(name, settings.options_for(name, 0), ignore_unknown=True)
        except (ValueError, TypeError) as exc:
            fail(f"bad option for policy {name}: {exc}")
    return settings


def _parse_setting(item: str) -> tuple[str, Any]:
    """KEY=VALUE with VALUE read as a TOML value (number, true/false, or a bare string)."""
    import tomllib

    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        fail(f"--set expects KEY=VALUE (got {item!r})")
    try:
        return key, tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return key, raw.strip()


def _run(world: Any, names: list[str], budget: int, seeds: range, workers: int, settings: Any, jobs: int, quiet: bool) -> Any:
    from rich.console import Console
    from rich.progress import Progress

    from hgm.sim.report import run_many

    total = len(names) * len(seeds)
    console = Console(stderr=True)
    kwargs = dict(budget=budget, seeds=list(seeds), workers=workers, settings=settings, jobs=jobs)
    if quiet or console.is_terminal:
        with Progress(transient=True, disable=quiet, console=console) as progress:
            task = progress.add_task(f"simulating {total} runs", total=total)
            return run_many(world, names, **kwargs, on_done=lambda: progress.advance(task))
    return run_many(world, names, **kwargs, on_done=_LineProgress(total))


class _LineProgress:
    """Progress as plain lines on stderr when it is not a terminal: every 10% or 10 seconds."""

    def __init__(self, total: int, every_s: float = 10.0) -> None:
        import time

        self.total, self.done, self.every_s = total, 0, every_s
        self._clock = time.monotonic
        self._last = self._clock()
        self._step = max(1, total // 10)

    def __call__(self) -> None:
        self.done += 1
        now = self._clock()
        if self.done == self.total or self.done % self._step == 0 or now - self._last >= self.every_s:
            self._last = now
            typer.echo(f"simulated {self.done}/{self.total} runs ({100 * self.done // self.total}%)", err=True)


def _fmt(stat: dict[str, Any], digits: int = 3) -> str:
    half = (stat["ci_high"] - stat["ci_low"]) / 2.0
    return f"{stat['mean']:.{digits}f} ± {half:.{digits}f}"


def _print_tables(landscape: str, budget: int, seeds: int, workers: int, rule: str, summaries: dict[str, Any],
                  differences: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{landscape}: {budget} evaluations, {seeds} seeds, {workers} worker(s); final choice {rule}; mean ± 95% CI")
    for col in ("policy", "shipped skill", "best in tree", "regret", "nodes", "confirmed", "wall time"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, s in summaries.items():
        table.add_row(name, _fmt(s["chosen"]), _fmt(s["best_in_tree"]), _fmt(s["regret"]), _fmt(s["nodes"], 1),
                      f"{s['confirmed']:.0%}", _fmt(s["wall_time"], 1))
    console.print(table)
    if differences:
        paired = Table(title="paired differences in shipped skill (same seeds, same worlds), mean ± 95% CI")
        paired.add_column("comparison")
        paired.add_column("difference", justify="right")
        for label, stat in differences.items():
            paired.add_row(label, _fmt(stat))
        console.print(paired)
    rules = Table(title="final-choice rules on the final state: shipped skill / regret")
    rules.add_column("policy")
    for r in RULES:
        rules.add_column(r, justify="right")
    for name, s in summaries.items():
        rules.add_row(name, *(f"{s['rules'][r]['chosen']['mean']:.3f} / {s['rules'][r]['regret']['mean']:.3f}" for r in RULES))
    console.print(rules)
