"""The summary of a run: counts, spending, and the best-belief node with its interval."""

from __future__ import annotations

from typing import Any

from archive.run import Run
from archive.stats import beta_quantile, best_belief, wilson_interval


def best_node(run: Run, quantile: float = 0.05) -> dict[str, Any] | None:
    """The best-belief node: highest `quantile` of Beta(1+s, 1+f) on its own evaluations."""
    tree = run.tree()
    best = best_belief(tree, quantile)
    if best is None:
        return None
    node = tree[best]
    s, n = node.successes, len(node.evals)
    low, high = wilson_interval(s, n)
    return {
        "node": best,
        "parent": node.parent_id,
        "successes": s,
        "evals": n,
        "mean": s / n,
        "belief": beta_quantile(quantile, 1 + s, 1 + node.failures),
        "quantile": quantile,
        "interval95": [low, high],
        "commit": node.commit,
    }


def run_summary(run: Run, quantile: float = 0.05) -> dict[str, Any]:
    """Everything `hgm run` prints at the end (and `--json` emits)."""
    tree = run.tree()
    evals = run.evaluations()
    expansions = run.expansions()
    by_status: dict[str, int] = {}
    for row in evals:
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
    calls = run._read_one(  # noqa: SLF001 - one aggregate query; the archive offers no helper
        "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM llm_calls"
    )
    info = run.info()
    return {
        "run_dir": str(run.path),
        "status": info.status,
        "nodes": len(tree),
        "evaluations": tree.n_evals,
        "evaluation_outcomes": by_status,
        "expansions_ok": sum(1 for e in expansions if e["status"] == "ok"),
        "expansions_failed": sum(1 for e in expansions if e["status"] == "failed"),
        "expansions_abandoned": sum(1 for e in expansions if e["status"] == "abandoned"),
        "llm_calls": int(calls[0]),
        "cost_usd": float(calls[1]),
        "tokens": int(calls[2]),
        "best": best_node(run, quantile),
    }


def spent_so_far(run: Run) -> tuple[float, int]:
    """Dollars and tokens of every model call the run has recorded."""
    row = run._read_one(  # noqa: SLF001
        "SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM llm_calls"
    )
    return float(row[0]), int(row[1])


def earlier_elapsed(run: Run) -> float:
    """Wall-clock seconds used by earlier sessions of the run.

    A session that ended cleanly logged its time; one that crashed (kill -9) is charged
    from its start to the last evaluation, expansion or model call recorded after it.
    """
    starts = {e["payload"].get("session"): e["time"] for e in run.events("session_start")}
    total = 0.0
    for end in run.events("session_end"):
        starts.pop(end["payload"].get("session"), None)
        total += float(end["payload"].get("elapsed_s", 0.0))
    for started in starts.values():
        row = run._read_one(  # noqa: SLF001
            "SELECT MAX(t) FROM (SELECT MAX(finished) AS t FROM evaluations WHERE finished >= ?1"
            " UNION ALL SELECT MAX(finished) FROM expansions WHERE finished >= ?1"
            " UNION ALL SELECT MAX(time) FROM llm_calls WHERE time >= ?1)",
            (started,),
        )
        if row and row[0] is not None:
            total += max(0.0, float(row[0]) - started)
    return total
