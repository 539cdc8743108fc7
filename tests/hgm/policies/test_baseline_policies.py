"""DGM, greedy and uniform policies."""

from __future__ import annotations

import numpy as np
import pytest

from hgm.search.state import SearchState
from hgm.policies import Evaluate, Expand, Wait
from hgm.policies.baselines import BaselineConfig, GreedyPolicy, UniformPolicy
from hgm.policies.dgm import DGMConfig, DGMPolicy

TASKS = tuple(f"t{i}" for i in range(20))


def _measured(outcomes: dict[int, list[int]], parents: dict[int, int | None]) -> SearchState:
    st = SearchState(TASKS)
    for node, parent in parents.items():
        st.add_node(node, parent)
    for node, results in outcomes.items():
        for k, r in enumerate(results):
            st.record_eval(node, TASKS[k], bool(r))
    return st


def test_dgm_measures_first_batch_in_fixed_order_then_expands() -> None:
    st = SearchState(TASKS)
    st.add_node(0, None)
    policy = DGMPolicy(DGMConfig(first_batch=4, full_batch=8))
    rng = np.random.default_rng(0)
    order = [TASKS[i] for i in policy.tasks.order(len(TASKS))]
    given = []
    for _ in range(4):
        action = policy.next_action(st.view(), rng)
        assert isinstance(action, Evaluate) and action.node_id == 0
        given.append(action.task_id)
        st.record_eval(0, action.task_id, len(given) <= 2)  # seed scores 0.5
    assert given == order[:4]
    assert isinstance(policy.next_action(st.view(), rng), Expand)


def test_dgm_full_batch_only_past_threshold() -> None:
    st = _measured({0: [1, 0, 1, 0], 1: [1, 1, 1, 0], 2: [0, 0, 0, 1]}, {0: None, 1: 0, 2: 0})
    policy = DGMPolicy(DGMConfig(first_batch=4, full_batch=8))
    required = policy.required_evals(st.view())
    assert list(required) == [4, 8, 4]  # child 1 (0.75) beats the seed's 0.5; child 2 does not
    action = policy.next_action(st.view(), np.random.default_rng(0))
    assert isinstance(action, Evaluate) and action.node_id == 1
    absolute = DGMPolicy(DGMConfig(first_batch=4, full_batch=8, threshold=0.8))
    assert list(absolute.required_evals(st.view())) == [4, 4, 4]


def test_dgm_parent_weights_formula() -> None:
    st = _measured({0: [1, 0, 1, 0], 1: [1, 1, 1, 0], 2: [0, 0, 0, 1]}, {0: None, 1: 0, 2: 0})
    st.begin_expansion(1)
    w = DGMPolicy(DGMConfig(first_batch=4, full_batch=4)).parent_weights(st.view())
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    assert w[0] == pytest.approx(sig(0.0) / 3)  # two children
    assert w[1] == pytest.approx(sig(2.5) / 2)  # one expansion in flight
    assert w[2] == pytest.approx(sig(-2.5) / 1)


def test_dgm_parent_frequencies_follow_weights() -> None:
    st = _measured({0: [1, 0, 1, 0], 1: [1, 1, 1, 0], 2: [0, 0, 0, 1]}, {0: None, 1: 0, 2: 0})
    policy = DGMPolicy(DGMConfig(first_batch=4, full_batch=4))
    w = policy.parent_weights(st.view())
    rng = np.random.default_rng(3)
    picks = [policy.next_action(st.view(), rng).node_id for _ in range(20000)]
    freq = np.bincount(picks, minlength=3) / len(picks)
    assert np.abs(freq - w / w.sum()).max() < 0.015


def _prob_best(s: np.ndarray, f: np.ndarray, draws: int = 400_000) -> np.ndarray:
    """P(node i has the largest draw of Beta(1 + s_i, 1 + f_i)), by Monte Carlo."""
    rng = np.random.default_rng(99)
    samples = rng.beta(1 + s[:, None], 1 + f[:, None], size=(len(s), draws))
    return np.bincount(samples.argmax(axis=0), minlength=len(s)) / draws


def test_greedy_thompson_samples_own_measures_for_both_choices() -> None:
    """The paper's greedy: Beta(1 + s, 1 + f) on the node's OWN measures, no clade pooling."""
    # node 0 has a strong child (node 3): HGM's clade pooling would favour it, greedy must not
    st = _measured({0: [1, 0, 0, 0], 1: [1, 1, 0], 2: [1], 3: [1, 1, 1, 1, 1]}, {0: None, 1: 0, 2: 0, 3: 0})
    view = st.view()
    g = GreedyPolicy()
    assert g.config.greedy_rule == "thompson"
    rng = np.random.default_rng(0)
    mask = np.array([True, True, True, False])
    expected = _prob_best(view.own_successes[:3].astype(float), view.own_failures[:3].astype(float))
    for choose in (g.choose_expansion, g.choose_evaluation):
        picks = np.bincount([choose(view, rng, mask) for _ in range(20000)], minlength=3) / 20000
        assert np.abs(picks - expected).max() < 0.015, (choose.__name__, picks, expected)


def test_greedy_mean_rule_is_the_deterministic_variant() -> None:
    st = _measured({0: [1, 0, 0, 0], 1: [1, 1, 0], 2: [1]}, {0: None, 1: 0, 2: 0})
    rng = np.random.default_rng(0)
    g = GreedyPolicy(BaselineConfig(alpha=1.0, greedy_rule="mean"))
    mask = np.ones(3, dtype=bool)
    assert {g.choose_expansion(st.view(), rng, mask) for _ in range(50)} == {2}  # raw mean 1.0
    # posterior means: 2/6, 3/5, 2/3 -> node 2
    assert g.choose_evaluation(st.view(), rng, mask) == 2
    st.add_node(3, 2)  # unmeasured child: 1/2 < 2/3
    assert g.choose_evaluation(st.view(), rng, np.ones(4, dtype=bool)) == 2
    with pytest.raises(ValueError, match="greedy_rule"):
        BaselineConfig(greedy_rule="sideways").validate()


def test_uniform_spreads_choices() -> None:
    st = _measured({0: [1, 0], 1: [0], 2: [1, 1]}, {0: None, 1: 0, 2: 0})
    u = UniformPolicy()
    rng = np.random.default_rng(0)
    mask = np.ones(3, dtype=bool)
    freq = np.bincount([u.choose_expansion(st.view(), rng, mask) for _ in range(6000)], minlength=3) / 6000
    assert np.abs(freq - 1 / 3).max() < 0.03


@pytest.mark.parametrize("policy", [GreedyPolicy(), UniformPolicy(), DGMPolicy()])
def test_baselines_wait_when_nothing_is_possible(policy: object) -> None:
    st = SearchState(("only",))
    st.add_node(0, None)
    st.begin_eval(0, "only")
    assert isinstance(policy.next_action(st.view(), np.random.default_rng(0)), Wait)


@pytest.mark.parametrize("policy", [GreedyPolicy(), UniformPolicy(), DGMPolicy(DGMConfig(first_batch=2, full_batch=2))])
def test_baselines_respect_the_expansion_budget(policy: object) -> None:
    """With the expansion cap reached every policy evaluates what is left, then waits."""
    st = _measured({0: [1, 0]}, {0: None})
    rng = np.random.default_rng(0)
    assert isinstance(policy.next_action(st.view(), rng), Expand)
    st.begin_expansion(0)
    st.end_expansion(0, None)
    st.budget_expansions = 1
    seen = set()
    for _ in range(len(TASKS) - 2):
        action = policy.next_action(st.view(), rng)
        assert isinstance(action, Evaluate) and action.task_id not in seen
        seen.add(action.task_id)
        st.begin_eval(action.node_id, action.task_id)
    assert isinstance(policy.next_action(st.view(), rng), Wait)


def test_baselines_bound_failed_expansions_unless_switched_off() -> None:
    st = _measured({0: [1, 0, 0, 1]}, {0: None})  # 4 ** 0.6 = 2.30
    for _ in range(3):
        st.begin_expansion(0)
        st.end_expansion(0, None)
    rng = np.random.default_rng(0)
    assert isinstance(GreedyPolicy().next_action(st.view(), rng), Evaluate)  # 3 failed > 2.30
    off = GreedyPolicy(BaselineConfig(failed_expansions="ignore"))
    assert isinstance(off.next_action(st.view(), rng), Expand)
