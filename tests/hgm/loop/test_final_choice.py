"""The final choice read back from an archive tree: the same rules as the live search."""

from __future__ import annotations

import math

import numpy as np
import pytest

from archive.tree import Node, Tree
from hgm.search import selection
from hgm.search.state import SearchState
from hgm.search.report import best_in_tree, final_choice_settings, tree_scores


def _tree(spec: dict[int, tuple[int | None, list[int]]]) -> Tree:
    nodes = {i: Node(i, parent, "c", 0.0, "active", "op", evals=list(evals)) for i, (parent, evals) in spec.items()}
    for node in nodes.values():
        if node.parent_id is not None:
            nodes[node.parent_id].children.append(node.id)
    return Tree(nodes, 0, [])


SPEC = {
    0: (None, [0, 1, 0, 0]),
    1: (0, [1]),  # mean 1.0 from a single evaluation
    2: (0, [1] * 16 + [0] * 4),  # mean 0.8 over 20
    3: (1, []),  # never evaluated
    4: (2, [1, 1, 0]),  # a child of the strong node
}


def test_best_belief_prefers_confidence_over_a_lucky_mean() -> None:
    tree = _tree(SPEC)
    best = best_in_tree(tree, "best-belief", 0.05)
    assert best is not None and best["node"] == 2 and best["rule"] == "best-belief"
    scores = tree_scores(tree, "best-belief", 0.05)
    assert scores[1] == pytest.approx(math.sqrt(0.05), abs=1e-6)  # Beta(2, 1) has cdf x^2
    assert scores[3] == -math.inf  # unmeasured nodes are never shipped
    assert best["interval95"][0] < best["mean"] < best["interval95"][1]


def test_raw_mean_takes_the_lucky_node() -> None:
    assert best_in_tree(_tree(SPEC), "raw-mean")["node"] == 1


def test_nothing_measured_ships_nothing() -> None:
    assert best_in_tree(_tree({0: (None, [])})) is None


def test_ties_go_to_more_evaluations_then_the_older_node() -> None:
    assert best_in_tree(_tree({0: (None, [1, 0]), 1: (0, [0, 1])}), "raw-mean")["node"] == 0


@pytest.mark.parametrize("rule", selection.RULES)
def test_archive_scores_equal_the_live_search_scores(rule: str) -> None:
    """`hgm best` on a finished run must pick what the live search would pick."""
    tree = _tree(SPEC)
    tasks = tuple(f"t{i}" for i in range(20))
    state = SearchState(tasks)
    for node_id in sorted(SPEC):
        parent, evals = SPEC[node_id]
        state.add_node(node_id, parent)
        for task, outcome in zip(tasks, evals):
            state.record_eval(node_id, task, bool(outcome), in_flight=False)
    view = state.view()
    live = selection.rule_scores(view, rule)
    archived = tree_scores(tree, rule)
    for pos, node_id in enumerate(view.node_ids):
        assert archived[int(node_id)] == pytest.approx(live[pos]) or (
            np.isinf(archived[int(node_id)]) and np.isinf(live[pos])
        )
    assert best_in_tree(tree, rule)["node"] == selection.choose_node(view, rule)


def test_settings_come_from_the_frozen_config_with_defaults() -> None:
    assert final_choice_settings({}) == (selection.DEFAULT_RULE, selection.DEFAULT_QUANTILE)
    assert final_choice_settings({"policy": {"final_rule": "best-belief", "final_quantile": 0.1}}) == ("best-belief", 0.1)
