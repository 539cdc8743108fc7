"""Run many simulated searches and summarise them over seeds (means with 95 % intervals).

Every policy runs on the same seeds, and a seed fixes the whole world (`hgm.sim.world`),
so comparisons are paired: `paired_difference` gives the interval of the per-seed
difference, much narrower than the two separate intervals suggest.
"""

from __future__ import annotations

import math
import multiprocessing
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hgm.config import PolicyConfig
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
    """Ctrl-C during a batch of runs: `results` holds every run that finished (a list from
    `run_specs`, by policy from `run_many`)."""

    def __init__(self, results: Any, done: int, total: int) -> None:
        super().__init__(f"interrupted after {done} of {total} runs")
        self.results, self.done, self.total = results, done, total


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the parent, which stops them at once (terminate)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass(frozen=True)
class RunSpec:
    """One simulated run to do; `label` names its variant in the results (default: the policy)."""

    landscape: Landscape
    policy: str
    budget: int
    seed: int
    workers: int = 1
    settings: PolicyConfig | None = None
    checkpoints: tuple[int, ...] | None = None
    label: str = ""


def _run_spec(spec: RunSpec) -> RunResult:
    result = simulate_run(
        spec.landscape, spec.policy, budget=spec.budget, seed=spec.seed, workers=spec.workers,
        settings=spec.settings, checkpoints=list(spec.checkpoints) if spec.checkpoints else None,
    )
    result.extra["label"] = spec.label or spec.policy
    return result


def _run_indexed(item: tuple[int, RunSpec]) -> tuple[int, RunResult]:
    index, spec = item
    return index, _run_spec(spec)


def run_specs(specs: Sequence[RunSpec], *, jobs: int = 1, on_done: Callable[[], None] | None = None) -> list[RunResult]:
    """Every run, in `specs` order; in `jobs` processes when jobs > 1.

    Runs are handed to the processes one at a time, so `on_done` follows every run and
    Ctrl-C stops the workers at once: it raises `SimulationInterrupted` holding every run
    that finished (in `specs` order).
    """
    finished: dict[int, RunResult] = {}

    def done(index: int, result: RunResult) -> None:
        finished[index] = result
        if on_done:
            on_done()

    try:
        if jobs > 1 and len(specs) > 1:
            pool = multiprocessing.get_context("fork").Pool(min(jobs, len(specs)), initializer=_ignore_sigint)
            try:
                for index, result in pool.imap_unordered(_run_indexed, enumerate(specs), chunksize=1):
                    done(index, result)
                pool.close()
            finally:
                pool.terminate()  # no-op after close(); on Ctrl-C the workers stop now
                pool.join()
        else:
            for index, spec in enumerate(specs):
                done(index, _run_spec(spec))
    except KeyboardInterrupt:
        raise SimulationInterrupted([finished[i] for i in sorted(finished)], len(finished), len(specs)) from None
    return [finished[i] for i in range(len(specs))]


def run_many(
    landscape: Landscape,
    policies: Sequence[str],
    *,
    budget: int,
    seeds: Sequence[int],
    workers: int = 1,
    settings: PolicyConfig | None = None,
    jobs: int = 1,
    checkpoints: list[int] | None = None,
    on_done: Callable[[], None] | None = None,
) -> dict[str, list[RunResult]]:
    """Every policy on every seed: paired runs (the same worlds for every policy), results in seed order.

    Ctrl-C raises `SimulationInterrupted` holding, per policy, every run that finished.
    """
    # seed by seed, every policy: an interrupted batch still compares all policies on the same seeds
    specs = [
        RunSpec(landscape, p, budget, s, workers, settings, tuple(checkpoints) if checkpoints else None)
        for s in seeds for p in policies
    ]

    def by_policy(results: Sequence[RunResult]) -> dict[str, list[RunResult]]:
        out: dict[str, list[RunResult]] = {p: [] for p in policies}
        for result in results:
            out[result.policy].append(result)
        return out

    try:
        return by_policy(run_specs(specs, jobs=jobs, on_done=on_done))
    except SimulationInterrupted as exc:
        raise SimulationInterrupted(by_policy(exc.results), exc.done, exc.total) from None


def summarize(results: Sequence[RunResult], rule: str = selection.DEFAULT_RULE) -> dict[str, Any]:
    """Figures of one policy over seeds: shipped skill, best in tree, regret, nodes, time.

    `chosen` is what the runs ship (the confirmation's pick where one ran, else `rule`'s
    choice); `rules` gives each final-choice rule's choice on the final state.
    """
    chosen = [r.shipped for r in results]
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
        "confirmed": sum(r.confirmed for r in results) / len(results),
        "nodes": interval([r.n_nodes[-1] for r in results]),
        "failed_expansions": interval([r.failed_expansions for r in results]),
        "evals_used": interval([r.evals_used for r in results]),
        "wall_time": interval([r.virtual_time for r in results]),
        "compute_seconds": interval([r.compute_seconds for r in results]),
        "rules": rules,
    }


def paired_difference(a: Sequence[RunResult], b: Sequence[RunResult]) -> dict[str, Any]:
    """Mean of (a - b) in shipped true skill over paired seeds, with its 95 % interval."""
    if [r.seed for r in a] != [r.seed for r in b]:
        raise ValueError("paired comparison needs the same seeds in the same order")
    return interval([x.shipped - y.shipped for x, y in zip(a, b, strict=True)])


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
