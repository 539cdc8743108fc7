"""Run many simulated searches and summarise them over seeds (means with 95 % intervals)."""

from __future__ import annotations

import math
import multiprocessing
import signal
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hgm.search import selection
from hgm.sim.landscape import Landscape
from hgm.sim.simulation import RunResult, simulate_run


def interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean and a normal-approximation 95 % interval of the mean."""
    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean()) if arr.size else math.nan
    half = 1.96 * float(arr.std(ddof=1)) / math.sqrt(arr.size) if arr.size > 1 else 0.0
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "values": [float(v) for v in arr]}


class SimulationInterrupted(KeyboardInterrupt):
    """Ctrl-C during `run_many`: `results` holds every run that finished, in seed order."""

    def __init__(self, results: dict[str, list[RunResult]], done: int, total: int) -> None:
        super().__init__(f"interrupted after {done} of {total} runs")
        self.results, self.done, self.total = results, done, total


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the parent, which stops them at once (terminate)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_indexed(item: tuple[int, tuple]) -> tuple[int, RunResult]:
    index, args = item
    return index, _run_one(args)


def _run_one(args: tuple[Landscape, str, int, int, int, dict[str, Any], list[int] | None]) -> RunResult:
    landscape, policy, budget, seed, workers, options, checkpoints = args
    return simulate_run(
        landscape, policy, budget=budget, seed=seed, workers=workers, options=options, checkpoints=checkpoints
    )


def run_many(
    landscape: Landscape,
    policies: Sequence[str],
    *,
    budget: int,
    seeds: Sequence[int],
    workers: int = 1,
    options: dict[str, Any] | None = None,
    jobs: int = 1,
    checkpoints: list[int] | None = None,
    on_done: Callable[[], None] | None = None,
) -> dict[str, list[RunResult]]:
    """Every (policy, seed) run; in `jobs` processes when jobs > 1. Results in seed order.

    Runs are handed to the processes one at a time, so `on_done` follows every run and
    Ctrl-C stops the workers at once: it raises `SimulationInterrupted` holding every
    run that finished.
    """
    # seed by seed, every policy: an interrupted batch still compares all policies
    tasks = [(landscape, p, budget, s, workers, dict(options or {}), checkpoints) for s in seeds for p in policies]
    finished: dict[int, RunResult] = {}

    def collect() -> dict[str, list[RunResult]]:
        out: dict[str, list[RunResult]] = {p: [] for p in policies}
        for index in sorted(finished):
            out[finished[index].policy].append(finished[index])
        return out

    try:
        if jobs > 1 and len(tasks) > 1:
            pool = multiprocessing.get_context("fork").Pool(min(jobs, len(tasks)), initializer=_ignore_sigint)
            try:
                for index, result in pool.imap_unordered(_run_indexed, enumerate(tasks), chunksize=1):
                    finished[index] = result
                    if on_done:
                        on_done()
                pool.close()
            finally:
                pool.terminate()  # no-op after close(); on Ctrl-C the workers stop now
                pool.join()
        else:
            for index, task in enumerate(tasks):
                finished[index] = _run_one(task)
                if on_done:
                    on_done()
    except KeyboardInterrupt:
        raise SimulationInterrupted(collect(), len(finished), len(tasks)) from None
    return collect()


def summarize(results: Sequence[RunResult], rule: str = selection.DEFAULT_RULE) -> dict[str, Any]:
    """Figures of one policy over seeds: chosen skill, best in tree, regret, nodes, time."""
    chosen = [r.final(rule) for r in results]
    best = [r.best_skill[-1] for r in results]
    rules = {}
    for name in results[0].chosen_skill:
        shipped = [r.final(name) for r in results]
        rules[name] = {
            "chosen": interval(shipped),
            "regret": interval([b - c for b, c in zip(best, shipped, strict=True)]),
        }
    return {
        "rule": rule,
        "seeds": [r.seed for r in results],
        "chosen": interval(chosen),
        "best_in_tree": interval(best),
        "regret": interval([b - c for b, c in zip(best, chosen, strict=True)]),
        "nodes": interval([r.n_nodes[-1] for r in results]),
        "failed_expansions": interval([r.failed_expansions for r in results]),
        "evals_used": interval([r.evals_used for r in results]),
        "wall_time": interval([r.virtual_time for r in results]),
        "compute_seconds": interval([r.compute_seconds for r in results]),
        "rules": rules,
    }


def curve(results: Sequence[RunResult], rule: str = selection.DEFAULT_RULE) -> dict[str, list[float]]:
    """Chosen-agent skill against evaluations used: mean and 95 % band per checkpoint."""
    matrix = np.asarray([r.chosen_skill[rule] for r in results], dtype=float)
    mean = matrix.mean(axis=0)
    half = 1.96 * matrix.std(axis=0, ddof=1) / math.sqrt(matrix.shape[0]) if matrix.shape[0] > 1 else 0 * mean
    return {
        "evals": [int(c) for c in results[0].checkpoints],
        "mean": mean.tolist(),
        "ci_low": (mean - half).tolist(),
        "ci_high": (mean + half).tolist(),
    }


def plot_curves(curves: dict[str, dict[str, list[float]]], path: str, title: str) -> None:
    """True skill of the chosen agent against evaluations, one line + band per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, c in curves.items():
        ax.plot(c["evals"], c["mean"], label=name)
        ax.fill_between(c["evals"], c["ci_low"], c["ci_high"], alpha=0.2)
    ax.set_xlabel("evaluations used")
    ax.set_ylabel("true skill of the chosen agent")
    ax.set_title(title)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
