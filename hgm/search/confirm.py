"""Confirmation on held-out tasks: the final pick judged on evaluations the search never made.

A run that confirms reserves, from the start, a set of held-out tasks and a share of its
evaluation budget. The search runs on the other tasks with the rest of the budget. When
it is over:

1. the top `top_k` candidates by the final-choice rule (on search results only) and the
   root are evaluated on every held-out task;
2. the candidate with the most held-out successes is shipped (ties: the search's order);
3. its parent is evaluated on the held-out tasks too (unless it already was), and the
   shipped agent is compared with its parent and with the root on the same tasks by an
   exact McNemar test (a two-sided binomial test on the discordant tasks).

Everything here is pure: the scheduler (`HoldoutPhase`, on the live search state) and the
archive reader (`hgm.search.report`) feed the same functions, so a run and its report
agree on every number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hgm.search import selection
from hgm.search.actions import Evaluate
from hgm.search.state import SearchState

PLAN_EVENT = "confirmation_plan"


@dataclass(frozen=True)
class ConfirmPlan:
    """Held-out tasks, the search's share of the evaluation budget, and how to pick."""

    holdout: tuple[str, ...]
    search_budget: int
    top_k: int = 3
    rule: str = selection.DEFAULT_RULE
    quantile: float = selection.DEFAULT_QUANTILE

    @property
    def reserve(self) -> int:
        """Evaluations kept for the confirmation: candidates, root and parent on every held-out task."""
        return (self.top_k + 2) * len(self.holdout)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "holdout": list(self.holdout)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConfirmPlan:
        return cls(tuple(data["holdout"]), int(data["search_budget"]), int(data["top_k"]), str(data["rule"]),
                   float(data["quantile"]))


def plan_confirmation(
    task_ids: Sequence[str],
    budget_evals: int,
    *,
    share: float,
    top_k: int,
    min_tasks: int,
    seed: int,
    rule: str = selection.DEFAULT_RULE,
    quantile: float = selection.DEFAULT_QUANTILE,
) -> ConfirmPlan | None:
    """The confirmation a run with these tasks and budget can afford, or None.

    `share` of the budget is spread over `top_k` candidates, the root and a parent; the
    held-out set may take at most a third of the tasks. None when that leaves fewer than
    `min_tasks` held-out tasks (small budgets, small suites). The held-out tasks are drawn
    at random, reproducibly from `seed`.
    """
    n_holdout = min(int(share * budget_evals) // (top_k + 2), len(task_ids) // 3)
    if n_holdout < max(1, min_tasks):
        return None
    rng = np.random.default_rng([seed, 0x4E1D])
    picked = sorted(int(i) for i in rng.choice(len(task_ids), n_holdout, replace=False))
    holdout = tuple(task_ids[i] for i in picked)
    return ConfirmPlan(holdout, budget_evals - (top_k + 2) * n_holdout, top_k, rule, quantile)


def search_first(task_ids: Sequence[str], plan: ConfirmPlan | None) -> tuple[str, ...]:
    """The task order a confirming search state uses: search tasks, then the held-out ones."""
    if plan is None:
        return tuple(task_ids)
    held = set(plan.holdout)
    return tuple(t for t in task_ids if t not in held) + plan.holdout


def candidates(
    ids: Sequence[int], parents: Sequence[int], successes: np.ndarray, failures: np.ndarray, plan: ConfirmPlan
) -> list[int]:
    """Ids of the `top_k` best measured nodes by the plan's rule on search results, best first.

    `parents` holds parent positions (-1 for a root), parents before children.
    """
    scores = selection.scores_from_counts(np.asarray(parents), successes, failures, plan.rule, quantile=plan.quantile)
    n = np.asarray(successes) + np.asarray(failures)
    order = np.lexsort((np.arange(len(ids)), -n, -scores))
    return [int(ids[i]) for i in order if np.isfinite(scores[i])][: plan.top_k]


def winner(cands: Sequence[int], holdout: Mapping[int, Mapping[str, int]]) -> int:
    """The candidate with the most held-out successes; ties go to the earlier (search-preferred) one."""
    return max(cands, key=lambda node: (sum(holdout.get(node, {}).values()), -cands.index(node)))


def next_needs(
    plan: ConfirmPlan,
    cands: Sequence[int],
    root: int,
    parent_of: Mapping[int, int | None],
    holdout: Mapping[int, Mapping[str, int]],
) -> tuple[list[int], int | None]:
    """(nodes still lacking held-out results, in the order to measure them; the winner once known).

    The winner is known once every candidate and the root have all held-out results; its
    parent is then the last node to measure.
    """
    def lacking(node: int) -> bool:
        return len(holdout.get(node, {})) < len(plan.holdout)

    first = list(dict.fromkeys([*cands, root]))
    missing = [node for node in first if lacking(node)]
    if missing or not cands:
        return missing, None
    best = winner(cands, holdout)
    parent = parent_of.get(best)
    return ([parent] if parent is not None and lacking(parent) else []), best


def mcnemar(shipped: Mapping[str, int], reference: Mapping[str, int], tasks: Sequence[str]) -> dict[str, Any]:
    """Exact McNemar test of `shipped` against `reference` on the same tasks.

    `wins` = tasks only the shipped agent resolves, `losses` = tasks only the reference
    resolves; p is the two-sided binomial tail of the smaller count under Bin(wins+losses, 1/2).
    """
    wins = sum(1 for t in tasks if shipped[t] and not reference[t])
    losses = sum(1 for t in tasks if reference[t] and not shipped[t])
    n = wins + losses
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n if n else 1.0
    return {
        "wins": wins,
        "losses": losses,
        "p_value": min(1.0, 2.0 * tail) if n else 1.0,
        "difference": (sum(shipped[t] for t in tasks) - sum(reference[t] for t in tasks)) / len(tasks),
    }


def outcome(
    plan: ConfirmPlan,
    cands: Sequence[int],
    root: int,
    parent_of: Mapping[int, int | None],
    holdout: Mapping[int, Mapping[str, int]],
    search_counts: Mapping[int, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """Where the confirmation stands: `status` running / done, and when done what it ships and why."""
    missing, best = next_needs(plan, cands, root, parent_of, holdout)
    tasks = list(plan.holdout)
    rows = [
        {
            "node": node,
            "holdout_resolved": sum(holdout.get(node, {}).values()),
            "holdout_evals": len(holdout.get(node, {})),
            **({"search_resolved": search_counts[node][0], "search_evals": sum(search_counts[node])}
               if search_counts and node in search_counts else {}),
        }
        for node in cands
    ]
    result: dict[str, Any] = {
        "status": "done" if best is not None and not missing else "running",
        "holdout_tasks": tasks,
        "rule": plan.rule,
        "top_k": plan.top_k,
        "candidates": rows,
        "node": None,
    }
    if result["status"] != "done":
        return result
    result["node"] = best
    shipped = holdout[best]
    for label, ref in (("vs_parent", parent_of.get(best)), ("vs_root", root)):
        if ref is None or ref == best:
            result[label] = None
        else:
            result[label] = {"node": ref, "holdout_resolved": sum(holdout[ref].values()), **mcnemar(shipped, holdout[ref], tasks)}
    return result


class HoldoutPhase:
    """The scheduler's side of a confirmation: which held-out evaluation to start next.

    Candidates are computed once, from the search results in the state, when the
    confirmation first asks (the search is over by then, so they never change).
    """

    def __init__(self, plan: ConfirmPlan) -> None:
        self.plan = plan
        self.holdout = frozenset(plan.holdout)
        self._cands: list[int] | None = None

    def candidates(self, state: SearchState) -> list[int]:
        if self._cands is None:
            ids = state.node_ids
            index = {node: i for i, node in enumerate(ids)}
            parents = [index[p] if (p := state.parent_of(node)) is not None else -1 for node in ids]
            s = np.zeros(len(ids), dtype=np.int64)
            f = np.zeros(len(ids), dtype=np.int64)
            for i, node in enumerate(ids):
                for task, value in state.own_measures(node):
                    if task not in self.holdout:
                        s[i] += value
                        f[i] += 1 - value
            self._cands = candidates(ids, parents, s, f, self.plan)
        return self._cands

    def results(self, state: SearchState, node: int) -> dict[str, int]:
        return {task: value for task, value in state.own_measures(node) if task in self.holdout}

    def _progress(self, state: SearchState) -> tuple[list[int], int | None]:
        """`next_needs` on the live state (held-out results read for the few nodes that matter)."""
        cands = self.candidates(state)
        root = state.node_ids[0]
        holdout = {node: self.results(state, node) for node in dict.fromkeys([*cands, root])}
        parent_of: dict[int, int | None] = {}
        if cands and all(len(results) == len(self.plan.holdout) for results in holdout.values()):
            best = winner(cands, holdout)
            parent_of[best] = parent = state.parent_of(best)
            if parent is not None and parent not in holdout:
                holdout[parent] = self.results(state, parent)
        return next_needs(self.plan, cands, root, parent_of, holdout)

    def next_action(self, state: SearchState) -> Evaluate | None:
        """An unseen held-out pair to evaluate now, or None (nothing can start now)."""
        missing, _ = self._progress(state)
        for node in missing:
            for task in self.plan.holdout:
                if not state.is_seen(node, task):
                    return Evaluate(node, task)
        return None

    def done(self, state: SearchState) -> bool:
        missing, best = self._progress(state)
        return best is not None and not missing

    def shipped(self, state: SearchState) -> int | None:
        """The node the confirmation ships, once it is done."""
        missing, best = self._progress(state)
        return best if not missing else None


def plan_for(settings: Any, task_ids: Sequence[str], budget_evals: int, seed: int) -> ConfirmPlan | None:
    """The confirmation of a run (or simulation) from its policy settings (`hgm.config.PolicyConfig`)."""
    if not settings.confirm:
        return None
    return plan_confirmation(
        task_ids, budget_evals, share=settings.confirm_share, top_k=settings.confirm_top_k,
        min_tasks=settings.confirm_min_tasks, seed=seed, rule=settings.final_rule, quantile=settings.final_quantile,
    )
