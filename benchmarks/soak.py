"""Crash soak: kill a scripted `hgm` evolution with SIGKILL N times, resume after each.

The kills land at seeded moments spread over start-up, evaluation, expansion,
acceptance and archive writes (see `tests/e2e/soak_harness.py`); only the hgm process is
killed, as a real crash would. Afterwards the archive must be intact, the budget measured
exactly, no pair twice, nothing finished lost, branches = nodes, and nothing of the run
left behind (containers, processes, temp files, gateway sockets).

Usage: python benchmarks/soak.py [--kills 20] [--seed 0] [--sandbox local|docker] [--workers 2]
Prints a table and, as the last line, a JSON object with the figures. Exit 1 on any problem.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "e2e"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from soak_harness import soak  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sandbox", default="local", choices=("local", "docker"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--budget-step", type=int, default=8, help="evaluations added whenever a session finishes")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (printed) for inspection")
    args = parser.parse_args()
    if args.kills < 1:
        parser.error("--kills must be at least 1")
    root = Path(tempfile.mkdtemp(prefix="hgm-soak-"))
    try:
        report = soak(root, kills=args.kills, seed=args.seed, budget_step=args.budget_step, workers=args.workers,
                      sandbox=args.sandbox, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    figures = report.figures()
    problems = report.problems()
    print(f"crash soak: {args.kills} SIGKILLs, seed {args.seed}, {args.sandbox} sandbox, {args.workers} workers, "
          f"{os.cpu_count()} CPU(s){'; kept in ' + str(root) if args.keep else ''}")
    rows = [
        ("kills delivered / survived", f"{figures['kills']} / {figures['kills_survived']}"),
        ("kills by phase", ", ".join(f"{k} {v}" for k, v in sorted(figures["kills_by_phase"].items()))),
        ("hgm sessions (finished before a kill)", f"{figures['sessions']} ({figures['finished_before_kill']})"),
        ("measured / final budget", f"{figures['measured']} / {figures['budget_evals']}"),
        ("evaluations lost", figures["evaluations_lost"]),
        ("duplicate (node, task) pairs", figures["duplicates"]),
        ("nodes (branch mismatches)", f"{figures['nodes']} ({figures['branch_mismatches']})"),
        ("orphans left by kills / not removed by the next session",
         f"{figures['orphans_after_kills']} / {figures['orphans_not_reaped']}"),
        ("leftovers at the end", figures["leftovers"]),
        ("integrity check, final status", f"{figures['integrity']}, {figures['final_status']}"),
        ("wall time", f"{figures['elapsed_s']} s"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(json.dumps({"benchmark": "soak", "kills_requested": args.kills, "seed": args.seed, "sandbox": args.sandbox,
                      "workers": args.workers, **figures, "problems": problems}))
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
