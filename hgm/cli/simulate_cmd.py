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
    seeds: Annotated[int, typer.Option(help="Runs per policy (seeds seed-start .. seed-start+seeds-1)")] = 20,
    seed_start: Annotated[int, typer.Option(help="First seed")] = 0,
    workers: Annotated[int, typer.Option(help="Simulated concurrent workers (virtual time)")] = 1,
    alpha: Annotated[float | None, typer.Option(help="Expansion exponent (hgm, greedy, uniform)")] = None,
    beta: Annotated[float | None, typer.Option(help="Cool-down exponent (hgm, with --cooldown)")] = None,
    cooldown: Annotated[bool | None, typer.Option("--cooldown/--no-cooldown", help="HGM cool-down")] = None,
    pseudo_evals: Annotated[float | None, typer.Option(help="HGM cap on a node's own measures in its clade")] = None,
    eval_random_level: Annotated[float | None, typer.Option(help="Probability of a random unseen task")] = None,
    confirm_fraction: Annotated[float | None, typer.Option(help="HGM: budget share kept to re-measure top candidates")] = None,
    set_options: Annotated[
        list[str] | None, typer.Option("--set", help="Any policy option as KEY=VALUE, e.g. greedy_eval=thompson, confirm_top_k=5")
    ] = None,
    selection_rule: Annotated[str, typer.Option("--selection", help="Final choice: raw-mean|best-belief|lineage")] = "lineage",
    jobs: Annotated[int, typer.Option(help="Processes to run seeds in parallel")] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print results as JSON")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG: chosen agent's skill vs evaluations")] = None,
) -> None:
    """Run policies on a simulated landscape; report the chosen agent's true skill, best in tree, regret."""
    names = list(dict.fromkeys(policy or POLICIES))
    bad = [n for n in names if n not in POLICIES]
    if bad:
        fail(f"unknown policy {bad[0]!r}; use one of {', '.join(POLICIES)}")
    if selection_rule not in RULES:
        fail(f"unknown selection rule {selection_rule!r}; use one of {', '.join(RULES)}")
    for label, value, low in (("--budget-evals", budget_evals, 1), ("--seeds", seeds, 1), ("--workers", workers, 1), ("--jobs", jobs, 1)):
        if value < low:
            fail(f"{label} must be at least {low} (got {value})")
    if plot is not None and plot.suffix.lower() != ".png":
        fail(f"--plot must name a .png file (got {plot})")
    if plot is not None and not plot.parent.exists():
        fail(f"folder {plot.parent} for --plot does not exist; create it first")

    from hgm.policies.registry import make_policy
    from hgm.sim.landscape import LandscapeError, load_landscape

    try:
        world = load_landscape(landscape)
    except LandscapeError as exc:
        fail(str(exc))
    options: dict[str, Any] = {
        k: v
        for k, v in {
            "alpha": alpha,
            "beta": beta,
            "cooldown": cooldown,
            "n_pseudo_descendant_evals": pseudo_evals,
            "eval_random_level": eval_random_level,
            "confirm_fraction": confirm_fraction,
        }.items()
        if v is not None
    }
    for item in set_options or []:
        key, value = _parse_setting(item)
        options[key] = value
    from hgm.policies.registry import policy_options

    known = {o for n in names for o in policy_options(n)}
    unknown = sorted(set(options) - known)
    if unknown:
        fail(f"no selected policy has option {', '.join(unknown)}; options: {', '.join(sorted(known))}")
    for name in names:
        try:
            make_policy(name, {**(world.policy_options or {}).get(name, {}), **options}, ignore_unknown=True)
        except (ValueError, TypeError) as exc:
            fail(f"bad option for policy {name}: {exc}")

    from hgm.sim import report

    interrupted: report.SimulationInterrupted | None = None
    try:
        results = _run(world, names, budget_evals, range(seed_start, seed_start + seeds), workers, options, jobs, json_out)
    except report.SimulationInterrupted as exc:
        interrupted, results = exc, exc.results
        names = [n for n in names if results[n]]
        if not names:
            fail(f"interrupted before any run finished (0 of {exc.total})", code=130)
        typer.echo(f"interrupted: {exc.done} of {exc.total} runs finished; the results below are of those only",
                   err=True)
    summaries = {name: report.summarize(results[name], selection_rule) for name in names}
    curves = {name: report.curve(results[name], selection_rule) for name in names}
    if plot is not None:
        report.plot_curves(curves, str(plot), f"{world.name}: {seeds} seeds, {workers} worker(s), rule {selection_rule}")
    if json_out:
        print_json(
            {
                "landscape": world.name,
                "budget_evals": budget_evals,
                "seeds": seeds,
                "workers": workers,
                "selection": selection_rule,
                "options": options,
                "policies": {n: {**summaries[n], "curve": curves[n]} for n in names},
                "plot": str(plot) if plot else None,
                **({"interrupted": {"done": interrupted.done, "total": interrupted.total}} if interrupted else {}),
            }
        )
    else:
        shown = seeds if interrupted is None else min(len(results[n]) for n in names)
        _print_tables(world.name, budget_evals, shown, workers, selection_rule, summaries)
        if plot is not None:
            typer.echo(f"plot written to {plot}")
    if interrupted is not None:
        raise typer.Exit(130)


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


def _run(world: Any, names: list[str], budget: int, seeds: range, workers: int, options: dict[str, Any], jobs: int, quiet: bool) -> Any:
    from rich.console import Console
    from rich.progress import Progress

    from hgm.sim.report import run_many

    total = len(names) * len(seeds)
    console = Console(stderr=True)
    kwargs = dict(budget=budget, seeds=list(seeds), workers=workers, options=options, jobs=jobs)
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


def _print_tables(landscape: str, budget: int, seeds: int, workers: int, rule: str, summaries: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{landscape}: {budget} evaluations, {seeds} seeds, {workers} worker(s); final choice {rule}; mean ± 95% CI")
    for col in ("policy", "chosen skill", "best in tree", "regret", "nodes", "wall time"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, s in summaries.items():
        table.add_row(name, _fmt(s["chosen"]), _fmt(s["best_in_tree"]), _fmt(s["regret"]), _fmt(s["nodes"], 1), _fmt(s["wall_time"], 1))
    console.print(table)
    rules = Table(title="final-choice rules: shipped skill / regret")
    rules.add_column("policy")
    for r in RULES:
        rules.add_column(r, justify="right")
    for name, s in summaries.items():
        rules.add_row(name, *(f"{s['rules'][r]['chosen']['mean']:.3f} / {s['rules'][r]['regret']['mean']:.3f}" for r in RULES))
    console.print(rules)
