"""The summary of a run: counts, spending, and the node to ship with its interval."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from archive.run import Run
from archive.stats import wilson_interval
from archive.tree import Tree
from hgm.loop import selection


def final_choice_settings(config: Mapping[str, Any]) -> tuple[str, float]:
    """(rule, quantile) of the final choice from a run's frozen config (defaults if absent)."""
    policy = config.get("policy") or {}
    return (
        str(policy.get("final_rule", selection.DEFAULT_RULE)),
        float(policy.get("final_quantile", selection.DEFAULT_QUANTILE)),
    )


def tree_scores(tree: Tree, rule: str, quantile: float = selection.DEFAULT_QUANTILE) -> dict[int, float]:
    """Each node's score under the final-choice `rule` (-inf for unmeasured nodes)."""
    order = [node for node, _ in tree.preorder()]  # parents before children
    position = {node.id: i for i, node in enumerate(order)}
    parent = np.array([position.get(n.parent_id, -1) if n.parent_id is not None else -1 for n in order])
    succ = np.array([n.successes for n in order])
    fail = np.array([n.failures for n in order])
    scores = selection.scores_from_counts(parent, succ, fail, rule, quantile=quantile)
    return {node.id: float(score) for node, score in zip(order, scores)}


def best_in_tree(tree: Tree, rule: str = selection.DEFAULT_RULE, quantile: float = selection.DEFAULT_QUANTILE) -> dict[str, Any] | None:
    """The node the final-choice `rule` ships, with its own record; None before any evaluation."""
    scores = tree_scores(tree, rule, quantile)
    measured = [tree[i] for i, score in scores.items() if np.isfinite(score)]
    if not measured:
        return None
    node = max(measured, key=lambda n: (scores[n.id], len(n.evals), -n.id))
    s, n = node.successes, len(node.evals)
    low, high = wilson_interval(s, n)
    return {
        "node": node.id,
        "parent": node.parent_id,
        "successes": s,
        "evals": n,
        "mean": s / n,
        "rule": rule,
        "score": scores[node.id],
        "belief": float(selection.beta_quantile(np.array([s]), np.array([node.failures]), quantile)[0]),
        "quantile": quantile,
        "interval95": [low, high],
        "commit": node.commit,
    }


def best_node(run: Run) -> dict[str, Any] | None:
    """The node a run ships under its configured final-choice rule."""
    rule, quantile = final_choice_settings(run.config)
    return best_in_tree(run.tree(), rule, quantile)


def run_summary(run: Run) -> dict[str, Any]:
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
        "best": best_node(run),
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
