"""HGM policy: Thompson formulas, clade pooling without mutation, expand/evaluate rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hgm.search.state import SearchState
from hgm.policies import Evaluate, Expand, Wait, make_policy
from hgm.policies.base import cooldown_factor
from hgm.policies.hgm import HGMConfig, HGMPolicy

TASKS = tuple(f"t{i}" for i in range(40))


def _tree() -> SearchState:
    """0 -> (1, 2); 1 -> 3; fixed own measures."""
    st = SearchState(TASKS)
    st.add_node(0, None)
    st.add_node(1, 0)
    st.add_node(2, 0)
    st.add_node(3, 1)
    outcomes = {0: [1, 0, 0, 0, 1, 0], 1: [1, 1, 0], 2: [0, 0, 0, 1], 3: [1, 1, 1, 0, 1]}
    for node, results in outcomes.items():
        for k, r in enumerate(results):
            st.record_eval(node, TASKS[k], bool(r))
    return st


def _prob_best(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(X_i is the largest) for independent Beta(a_i, b_i), by numeric integration."""
    x = np.linspace(1e-6, 1 - 1e-6, 20001)
    logpdf = np.array(
        [(ai - 1) * np.log(x) + (bi - 1) * np.log1p(-x) - (math.lgamma(ai) + math.lgamma(bi) - math.lgamma(ai + bi)) for ai, bi in zip(a, b, strict=True)]
    )
    pdf = np.exp(logpdf)
    dx = x[1] - x[0]
    cdf = np.cumsum(pdf, axis=1) * dx
    cdf /= cdf[:, -1:]
    probs = []
    for i in range(len(a)):
        others = np.prod(np.delete(cdf, i, axis=0), axis=0)
        probs.append(np.sum(pdf[i] * others) * dx)
    return np.asarray(probs) / np.sum(probs)


def test_expansion_frequencies_match_clade_posteriors() -> None:
    st = _tree()
    view = st.view()
    policy = HGMPolicy(HGMConfig(n_pseudo_descendant_evals=4))
    s, f = view.clade_counts(4)
    expected = _prob_best(1 + s, 1 + f)
    rng = np.random.default_rng(123)
    mask = np.ones(view.n_nodes, dtype=bool)
    draws = np.bincount([policy.choose_expansion(view, rng, mask) for _ in range(20000)], minlength=view.n_nodes) / 20000
    assert np.abs(draws - expected).max() < 0.015, (draws, expected)


def test_evaluation_frequencies_match_own_posteriors() -> None:
    view = _tree().view()
    policy = HGMPolicy()
    expected = _prob_best(1.0 + view.own_successes, 1.0 + view.own_failures)
    rng = np.random.default_rng(7)
    mask = np.ones(view.n_nodes, dtype=bool)
    draws = np.bincount([policy.choose_evaluation(view, rng, mask) for _ in range(20000)], minlength=view.n_nodes) / 20000
    assert np.abs(draws - expected).max() < 0.015, (draws, expected)


def test_clade_counts_pool_descendants_with_pseudo_cap() -> None:
    view = _tree().view()
    s, f = view.clade_counts(4)
    # node 0: 6 own evals (2 succ) capped to 4 at mean 1/3; descendants 1,2,3: 2+1+4 successes, 1+3+1 failures
    assert s[0] == pytest.approx(4 / 3 + 2 + 1 + 4)
    assert f[0] == pytest.approx(8 / 3 + 1 + 3 + 1)
    # node 1: 3 own (under the cap) + node 3
    assert (s[1], f[1]) == (2 + 4, 1 + 1)
    # node 3 (5 evals, 4 succ) capped to 4 pseudo at mean 0.8
    assert (s[3], f[3]) == (pytest.approx(3.2), pytest.approx(0.8))


def test_clade_pooling_never_mutates_own_measures() -> None:
    """The reference extended a node's own list when pooling; pooling here is pure."""
    st = _tree()
    before = {n: st.own_measures(n) for n in st.node_ids}
    policy = HGMPolicy(HGMConfig(n_pseudo_descendant_evals=2))
    rng = np.random.default_rng(0)
    for _ in range(50):
        view = st.view()
        policy.choose_expansion(view, rng, np.ones(view.n_nodes, dtype=bool))
        view.clade_counts(2)
    after = {n: st.own_measures(n) for n in st.node_ids}
    assert after == before
    assert st.own_counts(0) == (2, 4)
    # Growing the tree (expansions) adds to ancestors' clade counts, never to own counts.
    st.add_node(4, 3)
    st.record_eval(4, TASKS[0], True)
    assert st.own_counts(0) == (2, 4) and st.own_counts(3) == (4, 1)
    view = st.view()
    assert view.desc_successes[0] == 2 + 1 + 4 + 1
    assert view.desc_successes[3] == 1


def _scripted_sequence(alpha: float, steps: int) -> str:
    """One worker, instant work, every expansion succeeds, every evaluation fails."""
    st = SearchState(TASKS)
    st.add_node(0, None)
    policy = HGMPolicy(HGMConfig(alpha=alpha))
    rng = np.random.default_rng(1)
    letters = []
    for _ in range(steps):
        action = policy.next_action(st.view(), rng)
        if isinstance(action, Expand):
            letters.append("X")
            st.add_node(st.next_node_id(), action.node_id)
        else:
            assert isinstance(action, Evaluate)
            letters.append("E")
            st.record_eval(action.node_id, action.task_id, False)
    return "".join(letters)


def test_expand_evaluate_rule_for_a_scripted_history() -> None:
    # n_evals ** 0.6 >= n_nodes - 1: 1 -> 1, 4 -> 2.30, 7 -> 3.21 (hand-computed)
    assert _scripted_sequence(0.6, 11) == "EXXEEEXEEEX"
    # alpha 1: one node per evaluation
    assert _scripted_sequence(1.0, 7) == "EXXEXEX"


def test_pending_expansions_count_in_the_rule() -> None:
    st = SearchState(TASKS)
    st.add_node(0, None)
    st.record_eval(0, TASKS[0], True)  # 1 ** 0.6 = 1
    policy = HGMPolicy()
    rng = np.random.default_rng(0)
    assert isinstance(policy.next_action(st.view(), rng), Expand)  # 1 >= 0 + 0
    st.begin_expansion(0)
    assert isinstance(policy.next_action(st.view(), rng), Expand)  # 1 >= 0 + 1
    st.begin_expansion(0)
    assert isinstance(policy.next_action(st.view(), rng), Evaluate)  # 1 < 0 + 2


def test_failed_expansions_rules() -> None:
    """A failed expansion adds no node. `allowance` (default): children and failures are
    bounded by n ** alpha separately; `count`: failures count as children; `ignore`: no brake."""
    st = SearchState(TASKS)
    st.add_node(0, None)
    for k in range(4):
        st.record_eval(0, TASKS[k], False)  # 4 ** 0.6 = 2.30
    rng = np.random.default_rng(0)
    policies = {rule: HGMPolicy(HGMConfig(failed_expansions=rule)) for rule in ("allowance", "count", "ignore")}
    assert HGMPolicy().config.failed_expansions == "allowance"
    st.begin_expansion(0)
    st.end_expansion(0, 1)  # one child (unmeasured) ...
    for _ in range(2):
        st.begin_expansion(0)
        st.end_expansion(0, None)  # ... and two failures
    kinds = {rule: type(p.next_action(st.view(), rng)) for rule, p in policies.items()}
    assert kinds == {"allowance": Expand, "count": Evaluate, "ignore": Expand}  # 1 child <= 2.30, 2 failed <= 2.30; 3 > 2.30
    st.begin_expansion(0)
    st.end_expansion(0, None)  # a third failure exceeds the allowance
    kinds = {rule: type(p.next_action(st.view(), rng)) for rule, p in policies.items()}
    assert kinds == {"allowance": Evaluate, "count": Evaluate, "ignore": Expand}
    assert make_policy("hgm", {"failed_expansions": "count"}).config.failed_expansions == "count"
    with pytest.raises(ValueError, match="failed_expansions"):
        make_policy("hgm", {"failed_expansions": "sometimes"})


def test_expansion_budget_turns_expansions_into_evaluations_then_wait() -> None:
    st = SearchState(("a", "b"))
    st.add_node(0, None)
    st.record_eval(0, "a", True)
    st.budget_expansions = 1
    policy = HGMPolicy()
    rng = np.random.default_rng(0)
    assert st.view().expansions_left() == 1 and isinstance(policy.next_action(st.view(), rng), Expand)
    st.begin_expansion(0)  # in flight counts against the cap
    view = st.view()
    assert view.expansion_attempts == 1 and view.expansions_left() == 0 and not view.can_expand
    assert policy.next_action(view, rng) == Evaluate(0, "b")
    st.begin_eval(0, "b")
    assert isinstance(policy.next_action(st.view(), rng), Wait)  # nothing evaluable, no expansion left
    st.budget_expansions = None
    assert st.view().expansions_left() is None and isinstance(policy.next_action(st.view(), rng), Expand)


def test_every_evaluated_node_is_expandable_by_default() -> None:
    """A seed that solves nothing must not freeze the run; the reference rule is an option."""
    st = SearchState(TASKS)
    st.add_node(0, None)
    for t in TASKS[:3]:
        st.record_eval(0, t, False)
    rng = np.random.default_rng(0)
    assert isinstance(HGMPolicy().next_action(st.view(), rng), Expand)
    strict = HGMPolicy(HGMConfig(expand_positive_only=True))
    assert isinstance(strict.next_action(st.view(), rng), Evaluate)


def test_unseen_tasks_only_and_fixed_order_when_not_random() -> None:
    st = SearchState(TASKS)
    st.add_node(0, None)
    policy = HGMPolicy(HGMConfig(eval_random_level=0.0, alpha=0.01))
    order = policy.tasks.order(len(TASKS))
    rng = np.random.default_rng(0)
    given = []
    for _ in range(len(TASKS)):
        view = st.view()
        if view.own_evals[0] > 0:  # keep it evaluating: no expandable node
            policy.config.expand_positive_only = True
        action = policy.next_action(view, rng)
        assert isinstance(action, Evaluate)
        given.append(action.task_id)
        st.record_eval(0, action.task_id, False)
    assert given == [TASKS[i] for i in order]
    assert isinstance(policy.next_action(st.view(), rng), Wait)


def test_random_task_choice_never_repeats() -> None:
    st = SearchState(TASKS)
    st.add_node(0, None)
    policy = HGMPolicy(HGMConfig(expand_positive_only=True))
    rng = np.random.default_rng(5)
    seen = set()
    while True:
        action = policy.next_action(st.view(), rng)
        if isinstance(action, Wait):
            break
        assert isinstance(action, Evaluate) and action.task_id not in seen
        seen.add(action.task_id)
        st.record_eval(0, action.task_id, False)
    assert seen == set(TASKS)


def test_cooldown_factor() -> None:
    st = SearchState(TASKS)
    st.add_node(0, None)
    for t in TASKS[:30]:
        st.record_eval(0, t, True)
    st.budget_evals = 40
    assert cooldown_factor(st.view(), 1.0) == pytest.approx(4.0)
    assert cooldown_factor(st.view(), 2.0) == pytest.approx(16.0)
    st.budget_evals = None
    assert cooldown_factor(st.view(), 1.0) == 1.0


def test_registry_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="no option"):
        make_policy("hgm", {"bogus": 1})
    with pytest.raises(ValueError, match="alpha"):
        make_policy("hgm", {"alpha": 0})
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("nope")
    assert make_policy("greedy", {"n_pseudo_descendant_evals": 3}, ignore_unknown=True).name == "greedy"
