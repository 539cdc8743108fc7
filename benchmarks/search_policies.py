"""Search-policy benchmark: every policy on the same simulated worlds, with intervals.

Runs hgm, greedy (the HGM paper's: Thompson sampling on own results), dgm and uniform,
the same policy and scheduler code as `hgm run` with its default settings, on paired
seeds (every policy meets the same worlds, see `hgm.sim.world`), on every shipped
landscape at 150, 400 and 800 evaluations. Reports, per policy, the mean true skill of the
shipped agent with a 95 % interval, the best in the tree and the regret; every pairwise
difference with its paired 95 % interval; the final-choice comparison (HGM with and
without the confirmation on held-out tasks, at equal total budget); and two reference
variants (failed expansions counted as children; the older deterministic greedy). It
also times the sweep 40 seeds x 4 policies x 800 evaluations as `hgm simulate --jobs`
runs it. Writes benchmarks/out/search_policies.{md,png}; the last line is one JSON object.

    python benchmarks/search_policies.py [--seeds 200] [--jobs 2] [--seed-start 0]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

from hgm.config import PolicyConfig
from hgm.sim import report
from hgm.sim.landscape import load_landscape, shipped_landscapes

POLICIES = ("hgm", "greedy", "dgm", "uniform")
BUDGETS = (150, 400, 800)
DEFAULTS = PolicyConfig()
# The final-choice comparison: the default and the other setting of `confirm`.
CONFIRM_LABELS = {True: "hgm, confirmed", False: "hgm, rule only"}
# Reference variants: (label, policy, settings, landscapes, budgets, compared with)
VARIANTS = (
    ("hgm, failed expansions counted", "hgm", {"failed_expansions": "count"},
     ("flaky-expansions", "lineage-drift"), BUDGETS, "hgm"),
    ("greedy, deterministic (mean)", "greedy", {"options": {"greedy_rule": "mean"}},
     ("lineage-drift",), (400,), "greedy"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="paired seeds per figure (default 200)")
    parser.add_argument("--seed-start", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes")
    parser.add_argument("--out", default="benchmarks/out")
    args = parser.parse_args()
    if args.seeds < 2 or args.jobs < 1:
        parser.error("--seeds must be at least 2 and --jobs at least 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    started = time.perf_counter()

    # Timed figure: what `hgm simulate --budget-evals 800 --seeds 40 --jobs N` does (checkpoints every 10).
    t0 = time.perf_counter()
    report.run_many(load_landscape("lineage-drift"), POLICIES, budget=800, seeds=list(range(40)), jobs=args.jobs)
    sweep_seconds = time.perf_counter() - t0

    landscapes = shipped_landscapes()
    other = PolicyConfig(confirm=not DEFAULTS.confirm)
    specs: list[report.RunSpec] = []
    for name, budget in itertools.product(landscapes, BUDGETS):
        land = load_landscape(name)
        for policy in POLICIES:
            specs += [report.RunSpec(land, policy, budget, s, checkpoints=(budget,), label=f"{name}|{budget}|{policy}")
                      for s in seeds]
        specs += [report.RunSpec(land, "hgm", budget, s, settings=other, checkpoints=(budget,),
                                 label=f"{name}|{budget}|{CONFIRM_LABELS[other.confirm]}") for s in seeds]
    for label, policy, settings, names, budgets, _ in VARIANTS:
        for name, budget in itertools.product(names, budgets):
            land = load_landscape(name)
            specs += [report.RunSpec(land, policy, budget, s, settings=PolicyConfig(**settings), checkpoints=(budget,),
                                     label=f"{name}|{budget}|{label}") for s in seeds]
    groups: dict[str, list[report.RunResult]] = {}
    for result in report.run_specs(specs, jobs=args.jobs):
        groups.setdefault(result.extra["label"], []).append(result)
    total_seconds = time.perf_counter() - started

    figures = _figures(groups, landscapes)
    text = _markdown(figures, landscapes, args.seeds, args.seed_start, sweep_seconds, total_seconds, args.jobs, len(specs))
    (out / "search_policies.md").write_text(text, encoding="utf-8")
    plot_path = out / "search_policies.png"
    _plot(figures, landscapes, plot_path, args.seeds)
    print(text)
    print(f"written: {out / 'search_policies.md'}, {plot_path}")
    print(json.dumps({"seeds": args.seeds, "seed_start": args.seed_start, "jobs": args.jobs, "runs": len(specs),
                      "sweep_seconds_800x4x40": round(sweep_seconds, 2), "total_seconds": round(total_seconds, 1),
                      "figures": figures}))


def _stat(values: dict[str, Any]) -> dict[str, float]:
    return {"mean": round(values["mean"], 4), "half": round((values["ci_high"] - values["ci_low"]) / 2, 4)}


def _figures(groups: dict[str, list[report.RunResult]], landscapes: list[str]) -> dict[str, Any]:
    figures: dict[str, Any] = {"policies": {}, "differences": {}, "confirmation": {}, "variants": {}}
    for name, budget in itertools.product(landscapes, BUDGETS):
        key = f"{name}@{budget}"
        runs = {p: groups[f"{name}|{budget}|{p}"] for p in POLICIES}
        figures["policies"][key] = {}
        for policy, results in runs.items():
            s = report.summarize(results)
            figures["policies"][key][policy] = {
                "shipped": _stat(s["chosen"]), "best_in_tree": _stat(s["best_in_tree"]), "regret": _stat(s["regret"]),
                "nodes": round(s["nodes"]["mean"], 1),
            }
        figures["differences"][key] = {
            f"{a} - {b}": _stat(report.paired_difference(runs[a], runs[b])) for a, b in itertools.combinations(POLICIES, 2)
        }
        confirmed = {DEFAULTS.confirm: runs["hgm"], not DEFAULTS.confirm: groups[f"{name}|{budget}|{CONFIRM_LABELS[not DEFAULTS.confirm]}"]}
        on, off = confirmed[True], confirmed[False]
        s_on = report.summarize(on)
        figures["confirmation"][key] = {
            "confirmed_share": round(s_on["confirmed"], 3),
            "on": _stat(s_on["chosen"]),
            "off": _stat(report.summarize(off)["chosen"]),
            "on - off": _stat(report.paired_difference(on, off)),
            "search_pick_on": _stat(report.interval([r.extra.get("search_pick", r.shipped) for r in on])),
            "regret_on": _stat(s_on["regret"]),
        }
    for label, _policy, _settings, names, budgets, versus in VARIANTS:
        for name, budget in itertools.product(names, budgets):
            runs = groups[f"{name}|{budget}|{label}"]
            ref = groups[f"{name}|{budget}|{versus}"]
            figures["variants"].setdefault(label, {})[f"{name}@{budget}"] = {
                "shipped": _stat(report.summarize(runs)["chosen"]), f"minus {versus}": _stat(report.paired_difference(runs, ref)),
            }
    return figures


def _pm(stat: dict[str, float], signed: bool = False) -> str:
    return f"{stat['mean']:{'+' if signed else ''}.3f} ± {stat['half']:.3f}"


def _markdown(figures: dict[str, Any], landscapes: list[str], seeds: int, seed_start: int, sweep: float, total: float,
              jobs: int, runs: int) -> str:
    pairs = [f"{a} - {b}" for a, b in itertools.combinations(POLICIES, 2)]
    confirm_default = "on" if DEFAULTS.confirm else "off"
    lines = [
        f"# Search policies in simulation: {seeds} paired seeds ({seed_start}–{seed_start + seeds - 1}), "
        f"`hgm run`'s default settings (final choice `{DEFAULTS.final_rule}`, confirmation {confirm_default}), "
        "mean ± 95 % interval",
        "",
        "## True skill of the shipped agent",
        "",
        "| landscape | budget | " + " | ".join(POLICIES) + " |",
        "| --- | ---: |" + " ---: |" * len(POLICIES),
    ]
    for name, budget in itertools.product(landscapes, BUDGETS):
        row = figures["policies"][f"{name}@{budget}"]
        lines.append(f"| {name} | {budget} | " + " | ".join(_pm(row[p]["shipped"]) for p in POLICIES) + " |")
    lines += ["", "## Best in tree / regret (best in tree minus shipped) / nodes grown", "",
              "| landscape | budget | " + " | ".join(POLICIES) + " |", "| --- | ---: |" + " ---: |" * len(POLICIES)]
    for name, budget in itertools.product(landscapes, BUDGETS):
        row = figures["policies"][f"{name}@{budget}"]
        lines.append(f"| {name} | {budget} | " + " | ".join(
            f"{row[p]['best_in_tree']['mean']:.3f} / {row[p]['regret']['mean']:.3f} / {row[p]['nodes']:.0f}"
            for p in POLICIES) + " |")
    lines += ["", "## Paired differences in shipped skill (same seeds, same worlds)", "",
              "| landscape | budget | " + " | ".join(pairs) + " |", "| --- | ---: |" + " ---: |" * len(pairs)]
    for name, budget in itertools.product(landscapes, BUDGETS):
        row = figures["differences"][f"{name}@{budget}"]
        lines.append(f"| {name} | {budget} | " + " | ".join(_pm(row[p], signed=True) for p in pairs) + " |")
    lines += ["", "## Final choice: HGM with the confirmation on held-out tasks vs without, equal total budget", "",
              "| landscape | budget | runs confirmed | confirmed | rule only | confirmed − rule only | "
              "search's own pick (confirmed runs) | regret (confirmed) |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, budget in itertools.product(landscapes, BUDGETS):
        c = figures["confirmation"][f"{name}@{budget}"]
        lines.append(f"| {name} | {budget} | {c['confirmed_share']:.0%} | {_pm(c['on'])} | {_pm(c['off'])} | "
                     f"{_pm(c['on - off'], signed=True)} | {_pm(c['search_pick_on'])} | {_pm(c['regret_on'])} |")
    lines += ["", "(No confirmation where the budget is too small for 5 held-out tasks: those rows compare equal runs.)",
              "", "## Reference variants", "", "| variant | landscape @ budget | shipped | difference |", "| --- | --- | ---: | ---: |"]
    for label, per in figures["variants"].items():
        for key, v in per.items():
            versus = next(k for k in v if k.startswith("minus "))
            lines.append(f"| {label} | {key} | {_pm(v['shipped'])} | {_pm(v[versus], signed=True)} ({versus}) |")
    lines += ["", f"Sweep 40 seeds × 4 policies × 800 evaluations (lineage-drift, as `hgm simulate --jobs {jobs}`): "
              f"{sweep:.1f} s. Whole benchmark: {runs} runs in {total:.0f} s with {jobs} process(es).", ""]
    return "\n".join(lines)


def _plot(figures: dict[str, Any], landscapes: list[str], path: Path, seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(landscapes), figsize=(3.6 * len(landscapes), 3.8), sharey=True)
    for ax, name in zip(axes, landscapes, strict=True):
        for k, policy in enumerate(POLICIES):
            stats = [figures["policies"][f"{name}@{b}"][policy]["shipped"] for b in BUDGETS]
            xs = [b + (k - 1.5) * 8 for b in BUDGETS]
            ax.errorbar(xs, [s["mean"] for s in stats], yerr=[s["half"] for s in stats], marker="o", capsize=3,
                        label=policy)
        ax.set_title(name)
        ax.set_xticks(BUDGETS)
        ax.set_xlabel("evaluations")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"shipped true skill ({seeds} paired seeds, 95 % CI)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
