"""Grading speed: seconds per task to grade the gold patch of every mini-suite task.

    python benchmarks/eval_bench.py [--suite mini] [--backend docker] [--workers 1,2] [--tasks N]

Grading alone (no agent): each task's gold patch graded in a fresh sandbox (open,
put the pristine repository, apply, run eval.sh, parse with swebench, remove). The
host-side repository snapshots and each task's environment (its image, found or built
once per machine) are prepared before timing, as a run does on a task's first use. Prints a table and, as
the last line, one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluators.grading import grade  # noqa: E402
from evaluators.repos import snapshot  # noqa: E402
from evaluators.suite import load_suite  # noqa: E402
from sandbox import get_backend  # noqa: E402


def run(suite, tasks, backend, workers: int) -> dict:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda t: grade(suite.gold_patch(t), t, suite, backend), tasks))
    wall = time.perf_counter() - started
    durations = [r.duration for r in results]
    return {
        "tasks": len(tasks),
        "resolved": sum(r.resolved for r in results),
        "outcomes": sorted({r.outcome.value for r in results}),
        "wall_s": round(wall, 2),
        "wall_s_per_task": round(wall / len(tasks), 3),
        "grade_median_s": round(statistics.median(durations), 3),
        "grade_max_s": round(max(durations), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="mini")
    parser.add_argument("--backend", default="docker")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--tasks", type=int, default=0, help="only the first N tasks (0 = all)")
    args = parser.parse_args()

    suite = load_suite(args.suite, cache_dir=Path(tempfile.mkdtemp(prefix="hgm-bench-cache-")))
    tasks = suite.tasks()[: args.tasks or None]
    for task in tasks:  # warm the host-side snapshots: measure grading, not the first clone
        snapshot(suite.repo_source(task), task.base_commit, suite.cache_dir)
    backend = get_backend(args.backend)
    prepared = time.perf_counter()
    for task in tasks:  # each task's environment (image built or found once per machine), as a run does first
        suite.ensure_environment(task, backend)
    figures: dict = {"suite": suite.name, "backend": backend.name, "workers": {},
                     "prepare_s": round(time.perf_counter() - prepared, 2)}
    for workers in (int(w) for w in args.workers.split(",")):
        figures["workers"][str(workers)] = run(suite, tasks, backend, workers)

    print(f"grading gold patches: suite {suite.name}, {len(tasks)} tasks, {backend.name} backend "
          f"(environments prepared first in {figures['prepare_s']:.1f} s)")
    print(f"{'workers':>7} {'resolved':>9} {'wall s':>8} {'s/task':>8} {'median s':>9} {'max s':>7}")
    for workers, row in figures["workers"].items():
        print(f"{workers:>7} {row['resolved']:>4}/{row['tasks']:<4} {row['wall_s']:>8.2f} {row['wall_s_per_task']:>8.3f} "
              f"{row['grade_median_s']:>9.3f} {row['grade_max_s']:>7.3f}")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
