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
from hgm.search import confirm, selection


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


# a node "keeps touching test machinery" when at least this many of its evaluations did,
# and they are at least this share of its measured evaluations
MACHINERY_FLAG_MIN = 2
MACHINERY_FLAG_SHARE = 0.25


def node_flags(node: Any, retired: bool = False) -> list[str]:
    """Warnings about a node for `hgm show` and the TUI: retired, test machinery, contamination."""
    flags = []
    if retired:
        flags.append("retired" if node.status == "retired" else "retired-clade")
    if node.machinery >= MACHINERY_FLAG_MIN and node.machinery >= MACHINERY_FLAG_SHARE * max(1, len(node.evals)):
        flags.append("test-machinery")
    if node.contaminated:
        flags.append("contaminated")
    return flags


def tree_scores(tree: Tree, rule: str, quantile: float = selection.DEFAULT_QUANTILE) -> dict[int, float]:
    """Each node's score under the final-choice `rule` (-inf for unmeasured and retired nodes)."""
    order = [node for node, _ in tree.preorder()]  # parents before children
    position = {node.id: i for i, node in enumerate(order)}
    parent = np.array([position.get(n.parent_id, -1) if n.parent_id is not None else -1 for n in order])
    succ = np.array([n.successes for n in order])
    fail = np.array([n.failures for n in order])
    scores = selection.scores_from_counts(parent, succ, fail, rule, quantile=quantile)
    retired = tree.retired_clades()
    return {node.id: float("-inf") if node.id in retired else float(score) for node, score in zip(order, scores)}


def _node_record(tree: Tree, node_id: int, rule: str, quantile: float, score: float) -> dict[str, Any]:
    node = tree[node_id]
    s, n = node.successes, len(node.evals)
    low, high = wilson_interval(s, n)
    return {
        "node": node.id,
        "parent": node.parent_id,
        "successes": s,
        "evals": n,
        "mean": s / n if n else None,
        "rule": rule,
        "score": score,
        "belief": float(selection.beta_quantile(np.array([s]), np.array([node.failures]), quantile)[0]),
        "quantile": quantile,
        "interval95": [low, high],
        "commit": node.commit,
    }


def best_in_tree(
    tree: Tree,
    rule: str = selection.DEFAULT_RULE,
    quantile: float = selection.DEFAULT_QUANTILE,
    scores: dict[int, float] | None = None,
) -> dict[str, Any] | None:
    """The node the final-choice `rule` ships, with its own record; None before any evaluation.

    Pass `scores` (from `tree_scores` with the same rule) to avoid scoring the tree twice.
    """
    scores = tree_scores(tree, rule, quantile) if scores is None else scores
    measured = [tree[i] for i, score in scores.items() if np.isfinite(score)]
    if not measured:
        return None
    node = max(measured, key=lambda n: (scores[n.id], len(n.evals), -n.id))
    return _node_record(tree, node.id, rule, quantile, scores[node.id])


def confirmation_status(run: Run, tree: Tree | None = None) -> dict[str, Any] | None:
    """Where the run's confirmation on held-out tasks stands (`hgm.search.confirm.outcome`), or
    None when the run does not confirm. `status` is `waiting` until the search is over."""
    logged = run.events(confirm.PLAN_EVENT)
    if not logged or logged[0]["payload"].get("plan") is None:
        return None
    plan = confirm.ConfirmPlan.from_json(logged[0]["payload"]["plan"])
    tree = tree if tree is not None else run.tree()
    held = set(plan.holdout)
    ids = sorted(tree.nodes)  # creation order, as the scheduler's state
    position = {node_id: i for i, node_id in enumerate(ids)}
    parents = [position.get(tree[i].parent_id, -1) if tree[i].parent_id is not None else -1 for i in ids]
    succ = np.zeros(len(ids), dtype=np.int64)
    fail = np.zeros(len(ids), dtype=np.int64)
    holdout: dict[int, dict[str, int]] = {}
    for row in run.evaluations():
        if row["utility"] is None or row["node_id"] not in position:
            continue
        if row["task_id"] in held:
            holdout.setdefault(row["node_id"], {})[row["task_id"]] = int(row["utility"])
        elif row["utility"]:
            succ[position[row["node_id"]]] += 1
        else:
            fail[position[row["node_id"]]] += 1
    cands = confirm.candidates(ids, parents, succ, fail, plan)
    search_counts = {node: (int(succ[position[node]]), int(fail[position[node]])) for node in cands}
    parent_of = {node_id: tree[node_id].parent_id for node_id in ids}
    result = confirm.outcome(plan, cands, ids[0], parent_of, holdout, search_counts)
    if not holdout:
        result["status"] = "waiting"
    return result


def best_node(run: Run) -> dict[str, Any] | None:
    """The node a run ships: its confirmation's pick once that is done, else its final-choice rule's.

    `chosen_by` says which; `confirmation` holds the confirmation's status (None: the run
    does not confirm).
    """
    rule, quantile = final_choice_settings(run.config)
    tree = run.tree()
    status = confirmation_status(run, tree)
    if status is not None and status["status"] == "done":
        score = tree_scores(tree, rule, quantile)[status["node"]]
        return {**_node_record(tree, status["node"], rule, quantile, score), "chosen_by": "confirmation",
                "confirmation": status}
    best = best_in_tree(tree, rule, quantile)
    return None if best is None else {**best, "chosen_by": "rule", "confirmation": status}


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
    ledger = run.ledger()
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
        "guards": {
            "contaminated": by_status.get("contaminated", 0),
            "test_machinery": sum(1 for row in evals if "machinery:" in (row.get("flags") or "")),
            "children_rejected": sum(1 for row in ledger if row["decision"] == "rejected"),
            "retired": sum(1 for row in ledger if row["decision"] == "retired"),
        },
        "memory": memory_summary(run),
        "best": best_node(run),
    }


def memory_summary(run: Run) -> dict[str, int]:
    """The run's lessons memory in counts: its own items by polarity, words that fell back,
    and items from other runs (a bank) its diagnoses were shown."""
    items = run.memory()
    own = [i for i in items if i.run_key == run.key]
    counts = {p: sum(1 for i in own if i.polarity == p) for p in ("helped", "hurt", "unproven")}
    return {"items": len(own), **counts, "fallback": sum(1 for i in own if i.written_by == "fallback"),
            "from_other_runs": len(items) - len(own)}


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
    retired = tree.retired_clades()
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
                "score": scores[node.id] if n and node.id not in retired else None,
                "clade_evals": cs + cf,
                "clade_mean": cs / (cs + cf) if cs + cf else None,
                "status": node.status,
                "operator": node.operator,
                "second_parent": node.second_parent_id,  # recombine: a link, not a tree edge
                "commit": node.commit,
                "machinery_evals": node.machinery,
                "contaminated_evals": node.contaminated,
                "flags": node_flags(node, node.id in retired),
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


def best_summary(tree: Tree, config: dict[str, Any], confirmation: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The node the run ships, with its own mean; None before any evaluation.

    `confirmation` (from `confirmation_status`) decides once it is done; else the run's
    final-choice rule does.
    """
    rule, quantile = final_choice_settings(config)
    if confirmation is not None and confirmation["status"] == "done":
        node = tree[confirmation["node"]]
        n = len(node.evals)
        return {"node": node.id, "mean": node.successes / n if n else None, "evals": n, "rule": rule,
                "chosen_by": "confirmation"}
    best = best_in_tree(tree, rule, quantile)
    if best is None:
        return None
    return {"node": best["node"], "mean": best["mean"], "evals": best["evals"], "rule": best["rule"], "chosen_by": "rule"}


def find_runs(directory: Path) -> list[Path]:
    if (directory / "hgm.db").exists():
        return [directory]
    return sorted(p for p in directory.iterdir() if p.is_dir() and (p / "hgm.db").exists())


def run_listing(path: Path) -> dict[str, Any]:
    try:
        with Run.open(path) as run:
            info = run.info()
            tree = run.tree()
            best = best_summary(tree, run.config, confirmation_status(run, tree))
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
