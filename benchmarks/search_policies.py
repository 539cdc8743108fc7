"""Search-policy benchmark on the shipped simulated landscapes.

Runs hgm, dgm, greedy and uniform (the same policy and scheduler code as `hgm run`)
for 40 seeds on every shipped landscape, writes a markdown table and a plot to
benchmarks/out/, prints the table, and prints one JSON object as the last line.

    python benchmarks/search_policies.py [--seeds 40] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from hgm.search import selection
from hgm.sim import report
from hgm.sim.landscape import load_landscape

POLICIES = ("hgm", "dgm", "greedy", "uniform")
# (landscape, budget, workers)
SCENARIOS = (
    ("lineage-drift", 150, 1),
    ("lineage-drift", 400, 1),
    ("lineage-drift", 800, 1),
    ("mismatch", 800, 1),
    ("no-mismatch", 800, 1),
    ("default", 800, 1),
    ("default", 800, 16),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", default="benchmarks/out")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    rule = selection.DEFAULT_RULE

    # Timed figure: 40 seeds x 4 policies x 800 evaluations.
    started = time.perf_counter()
    timing = report.run_many(load_landscape("lineage-drift"), POLICIES, budget=800, seeds=seeds, jobs=args.jobs)
    timed_seconds = time.perf_counter() - started

    figures: dict[str, dict] = {}
    curves: dict[str, dict] = {}
    lines = [
        f"# Search policies in simulation ({args.seeds} seeds, final choice `{rule}`, mean ± 95% CI)",
        "",
        "| landscape | budget | workers | policy | chosen skill | best in tree | regret | nodes | virtual wall time |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    rule_lines = [
        "",
        "## Final-choice rules: shipped skill / regret",
        "",
        "| landscape | budget | policy | " + " | ".join(selection.RULES) + " |",
        "| --- | ---: | --- |" + " ---: |" * len(selection.RULES),
    ]
    for name, budget, workers in SCENARIOS:
        landscape = load_landscape(name)
        if (name, budget, workers) == ("lineage-drift", 800, 1):
            results = timing
        else:
            results = report.run_many(landscape, POLICIES, budget=budget, seeds=seeds, workers=workers, jobs=args.jobs)
        key = f"{name}@{budget}" + (f"x{workers}w" if workers > 1 else "")
        figures[key] = {}
        for policy in POLICIES:
            s = report.summarize(results[policy], rule)
            figures[key][policy] = {
                "chosen": round(s["chosen"]["mean"], 4),
                "chosen_ci": [round(s["chosen"]["ci_low"], 4), round(s["chosen"]["ci_high"], 4)],
                "best_in_tree": round(s["best_in_tree"]["mean"], 4),
                "regret": round(s["regret"]["mean"], 4),
                "nodes": round(s["nodes"]["mean"], 1),
                "wall_time": round(s["wall_time"]["mean"], 1),
                "rules": {r: [round(v["chosen"]["mean"], 4), round(v["regret"]["mean"], 4)] for r, v in s["rules"].items()},
            }
            half = (s["chosen"]["ci_high"] - s["chosen"]["ci_low"]) / 2
            lines.append(
                f"| {name} | {budget} | {workers} | {policy} | {s['chosen']['mean']:.3f} ± {half:.3f} | "
                f"{s['best_in_tree']['mean']:.3f} | {s['regret']['mean']:.3f} | {s['nodes']['mean']:.1f} | "
                f"{s['wall_time']['mean']:.0f} |"
            )
            rule_lines.append(
                f"| {name} | {budget} | {policy} | "
                + " | ".join(f"{s['rules'][r]['chosen']['mean']:.3f} / {s['rules'][r]['regret']['mean']:.3f}" for r in selection.RULES)
                + " |"
            )
            if budget == 800 and workers == 1:
                curves.setdefault(name, {})[policy] = report.curve(results[policy], rule)

    plot_path = out / "search_policies.png"
    _plot(curves, plot_path, args.seeds)
    lines += rule_lines
    lines += ["", f"40-seed x 4-policy x 800-evaluation sweep on lineage-drift: {timed_seconds:.1f} s with {args.jobs} process(es).", ""]
    text = "\n".join(lines)
    (out / "search_policies.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"written: {out / 'search_policies.md'}, {plot_path}")
    print(json.dumps({"rule": rule, "seeds": args.seeds, "sweep_seconds_800x4x40": round(timed_seconds, 2), "figures": figures}))


def _plot(curves: dict[str, dict], path: Path, seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 4), sharey=True)
    for ax, (name, per_policy) in zip(axes, curves.items(), strict=True):
        for policy, c in per_policy.items():
            ax.plot(c["evals"], c["mean"], label=policy)
            ax.fill_between(c["evals"], c["ci_low"], c["ci_high"], alpha=0.2)
        ax.set_title(name)
        ax.set_xlabel("evaluations used")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"true skill of chosen agent ({seeds} seeds)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
