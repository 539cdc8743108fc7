"""Final-choice rules."""

from __future__ import annotations

import numpy as np
import pytest

from hgm.search import selection
from hgm.search.state import SearchState


def test_beta_quantile_matches_monte_carlo() -> None:
    s = np.array([0, 3, 10, 1, 40])
    f = np.array([0, 7, 2, 20, 60])
    rng = np.random.default_rng(2024)
    for q in (0.05, 0.5):
        exact = selection.beta_quantile(s, f, q)
        mc = np.array([np.quantile(rng.beta(1 + a, 1 + b, 200_000), q) for a, b in zip(s, f, strict=True)])
        assert np.abs(exact - mc).max() < 0.004
    assert selection.beta_quantile(np.array([0]), np.array([0]), 0.05)[0] == pytest.approx(0.05, abs=1e-6)


def _state() -> SearchState:
    tasks = tuple(f"t{i}" for i in range(60))
    st = SearchState(tasks)
    st.add_node(0, None)
    st.add_node(1, 0)
    st.add_node(2, 1)
    for k in range(40):  # node 0: 0.5 over 40
        st.record_eval(0, tasks[k], k % 2 == 0)
    for k in range(30):  # node 1: 0.7 over 30
        st.record_eval(1, tasks[k], k % 10 < 7)
    st.record_eval(2, tasks[0], True)  # node 2: 1 / 1
    st.record_eval(2, tasks[1], True)  # 2 / 2
    st.add_node(3, 0)  # a sibling of node 1 with 3 / 3
    for k in range(3):
        st.record_eval(3, tasks[k], True)
    return st


def test_rules_disagree_as_designed() -> None:
    view = _state().view()
    assert selection.choose_node(view, "raw-mean") == 3  # 3/3 beats 2/2 on evaluations
    assert selection.choose_node(view, "best-belief") == 1  # few measures mean a low 5 % quantile
    est = selection.lineage_estimates(view.parent, view.own_successes, view.own_failures, prior_strength=6.0)
    root = 21 / 42
    child = (21 + 6 * root) / 36
    grandchild = (2 + 6 * child) / 8
    sibling = (3 + 6 * root) / 9
    assert est == pytest.approx([root, child, grandchild, sibling])
    # 2/2 under a strong parent beats 3/3 under a weaker one
    assert selection.choose_node(view, "lineage", prior_strength=6.0) == 2
    assert list(selection.top_positions(view, 3, "raw-mean")) == [3, 2, 1]


def test_unmeasured_nodes_are_never_chosen() -> None:
    st = SearchState(("a", "b"))
    st.add_node(0, None)
    st.add_node(1, 0)
    st.record_eval(0, "a", False)
    for rule in selection.RULES:
        assert selection.choose_node(st.view(), rule) == 0
    with pytest.raises(ValueError, match="unknown selection rule"):
        selection.rule_scores(st.view(), "magic")
