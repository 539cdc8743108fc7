"""Scores read from an archive: the node to ship, per-node rows, run summaries and listings.

The CLI (`hgm show`, `runs`, `best`, `export --best`), the live display, the TUI and the
run loop all read these, so every view of a run agrees on its numbers.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from archive.errors import ArchiveError
from archive.run import Run
from archive.stats import wilson_interval
from archive.tree import Tree
from hgm.search import selection


def run_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The model, its server and the agent limits a run's frozen config holds."""
    return {"model": config.get("model"), "api_base": config.get("api_base"), "agent": dict(config.get("agent") or {})}


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
    calls = run.llm_totals()
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
    _, cost, tokens = run.llm_totals()
    return cost, tokens


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
        last = run.last_activity(started)
        if last is not None:
            total += max(0.0, last - started)
    return total


def node_rows(tree: Tree, config: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per node in tree order: counts, mean, 95% Wilson interval, final-choice score."""
    scores = tree_scores(tree, *final_choice_settings(config))
    clades = tree.clade_counts()
    rows = []
    for node, depth in tree.preorder():
        n, s = len(node.evals), node.successes
        lo, hi = wilson_interval(s, n)
        cs, cf = clades[node.id]
        rows.append(
            {
                "id": node.id,
                "parent": node.parent_id,
                "depth": depth,
                "evals": n,
                "resolved": s,
                "mean": s / n if n else None,
                "ci95": [lo, hi] if n else None,
                "score": scores[node.id] if n else None,
                "clade_evals": cs + cf,
                "clade_mean": cs / (cs + cf) if cs + cf else None,
                "status": node.status,
                "operator": node.operator,
                "second_parent": node.second_parent_id,  # recombine: a link, not a tree edge
                "commit": node.commit,
            }
        )
    return rows


def trusted_subtree(tree: Tree, scores: dict[int, float], limit: int) -> set[int]:
    """Ids of the highest-scoring nodes plus all their ancestors, about `limit` in all."""
    keep: set[int] = set()
    for node_id in sorted(scores, key=lambda i: (-scores[i], i)):
        if len(keep) >= limit:
            break
        while node_id is not None and node_id not in keep and node_id in tree.nodes:
            keep.add(node_id)
            node_id = tree[node_id].parent_id
    return keep


def best_summary(tree: Tree, config: dict[str, Any]) -> dict[str, Any] | None:
    """The node the run's final-choice rule ships, with its own mean; None before any evaluation."""
    best = best_in_tree(tree, *final_choice_settings(config))
    if best is None:
        return None
    return {"node": best["node"], "mean": best["mean"], "evals": best["evals"], "rule": best["rule"]}


def find_runs(directory: Path) -> list[Path]:
    if (directory / "hgm.db").exists():
        return [directory]
    return sorted(p for p in directory.iterdir() if p.is_dir() and (p / "hgm.db").exists())


def run_listing(path: Path) -> dict[str, Any]:
    try:
        with Run.open(path) as run:
            info = run.info()
            best = best_summary(run.tree(), run.config)
    except ArchiveError as exc:
        return {"id": path.name, "path": str(path), "status": "unreadable", "error": str(exc)}
    return {
        "id": path.name,
        "path": str(path),
        "created": iso_time(info.created),
        "updated": iso_time(info.updated),
        "status": info.status,
        "nodes": info.nodes,
        "evaluations": info.evaluations,
        "best": best,
        "hgm_version": info.hgm_version,
    }


def iso_time(ts: float | None) -> str | None:
    """A unix time as ISO 8601 in UTC, or None."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds") if ts else None
