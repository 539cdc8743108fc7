"""Live view of a running search: a rich panel on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import Any

from hgm.loop.executor import Progress

STOP_TEXT = {
    "interrupted": "stopping (Ctrl-C): waiting for work in flight; Ctrl-C again abandons it now",
    "budget_usd": "dollar budget spent: finishing work in flight",
    "wall_clock": "wall-clock budget spent: finishing work in flight",
    "infra_errors": "too many infrastructure errors: stopping",
    "internal_error": "internal error: stopping",
}


def best_line(view: Any, rule: str, quantile: float) -> str:
    """'node N: s/n resolved, 95% interval [lo, hi]' for the node the final-choice rule ships now."""
    from archive.stats import wilson_interval
    from hgm.search import selection

    if view is None or int(view.own_evals.sum()) == 0:
        return "-"
    pos = selection.choose_position(view, rule, quantile=quantile)
    s, f = int(view.own_successes[pos]), int(view.own_failures[pos])
    lo, hi = wilson_interval(s, s + f)
    return f"node {int(view.node_ids[pos])}: {s}/{s + f} resolved, 95% interval [{lo:.2f}, {hi:.2f}]"


def _render(p: Progress, best: str) -> Any:
    from rich.panel import Panel
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("evaluations", f"{p.evals_done} done + {p.evals_in_flight} running / budget {p.budget_evals}")
    grid.add_row("nodes", f"{p.nodes}  (expansions: {p.expansions_ok} ok, {p.expansions_failed} failed)")
    grid.add_row("best", best)
    grid.add_row("spent", f"${p.cost_usd:.4f}, {p.tokens:,} tokens")
    grid.add_row("infra errors", str(p.infra_errors))
    grid.add_row("elapsed", f"{p.elapsed_s:.0f} s")
    workers = Table.grid(padding=(0, 2))
    for worker, what, secs in p.busy:
        workers.add_row(worker, what, f"{secs:.0f}s")
    grid.add_row(f"busy ({len(p.busy)})", workers if p.busy else "-")
    if p.stopping:
        grid.add_row("[yellow]status", f"[yellow]{STOP_TEXT.get(p.stopping, p.stopping)}")
    return Panel(grid, title="hgm run", expand=False)


class LiveDisplay:
    """`on_tick` for the executor; `start()`/`stop()` around `run_session`."""

    def __init__(self, rule: str, quantile: float, enabled: bool | None = None) -> None:
        self.rule = rule
        self.quantile = quantile
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._live: Any = None
        self._last_plain: tuple | None = None

    def start(self) -> None:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(stderr=True), refresh_per_second=4, transient=False)
            self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __call__(self, progress: Progress) -> None:
        best = best_line(progress.view, self.rule, self.quantile)
        if self._live is not None:
            self._live.update(_render(progress, best))
            return
        key = (progress.evals_done, progress.nodes, progress.expansions_failed, progress.stopping)
        if key != self._last_plain:
            self._last_plain = key
            print(
                f"[{progress.elapsed_s:6.0f}s] evals {progress.evals_done}/{progress.budget_evals} "
                f"nodes {progress.nodes} failed-expansions {progress.expansions_failed} "
                f"busy {len(progress.busy)} ${progress.cost_usd:.4f} best {best}"
                + (f" [{progress.stopping}]" if progress.stopping else ""),
                file=sys.stderr,
                flush=True,
            )

