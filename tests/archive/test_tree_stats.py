"""The in-memory tree and the statistics used by `hgm show` and the final choice."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from archive import EvalRecord, ExpansionRecord, Run
from archive.stats import belief_scores, best_belief, beta_cdf, beta_quantile, wilson_interval
from archive.tree import Node, Tree


def _tree(spec: dict[int, tuple[int | None, list[int]]]) -> Tree:
    nodes = {i: Node(i, parent, "c", 0.0, "active", "op", evals=list(evals)) for i, (parent, evals) in spec.items()}
    for node in nodes.values():
        if node.parent_id is not None:
            nodes[node.parent_id].children.append(node.id)
    return Tree(nodes, 0, [])


def test_tree_from_run_has_structure_evals_and_failed_expansions(run: Run, seed_dir: Path) -> None:
    a = run.add_node(0, seed_dir, "improve")
    b = run.add_node(0, seed_dir, "improve")
    c = run.add_node(a, seed_dir, "improve")
    run.record_expansion(ExpansionRecord(parent_id=b, status="abandoned", reason="budget"))
    for node, task, status in [(0, "t1", "resolved"), (a, "t1", "unresolved"), (c, "t1", "resolved"),
                               (c, "t2", "resolved"), (c, "t3", "error_infra")]:
        run.record_eval(EvalRecord(node, task, status))
    tree = run.tree()
    assert len(tree) == 4 and tree.root_id == 0
    assert tree[0].children == [a, b] and tree[a].children == [c]
    assert [(n.id, d) for n, d in tree.preorder()] == [(0, 0), (a, 1), (c, 2), (b, 1)]
    assert tree[c].evals == [1, 1]  # the infra error is not a measurement
    assert tree.clade_counts() == {0: (3, 1), a: (2, 1), c: (2, 0), b: (0, 0)}
    assert [(f.parent_id, f.status, f.reason) for f in tree.failed_expansions] == [(b, "abandoned", "budget")]
    assert tree.n_evals == 4


def test_wilson_interval() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.7225, abs=1e-4)


@pytest.mark.parametrize(("a", "b"), [(1, 1), (2, 1), (1, 2), (3, 7), (11, 91), (40, 3), (200, 180)])
def test_beta_cdf_and_quantile_agree_with_sampling(a: int, b: int) -> None:
    rng = np.random.default_rng(a * 1000 + b)
    samples = rng.beta(a, b, 200_000)
    for q in (0.05, 0.5, 0.95):
        x = beta_quantile(q, a, b)
        assert beta_cdf(x, a, b) == pytest.approx(q, abs=1e-7)
        assert np.quantile(samples, q) == pytest.approx(x, abs=5e-3)


def test_beta_quantile_closed_forms() -> None:
    assert beta_quantile(0.05, 1, 1) == pytest.approx(0.05)
    assert beta_quantile(0.05, 2, 1) == pytest.approx(math.sqrt(0.05))  # cdf x^2
    assert beta_quantile(0.05, 1, 2) == pytest.approx(1 - math.sqrt(0.95))  # cdf 1-(1-x)^2
    with pytest.raises(ValueError):
        beta_quantile(1.0, 1, 1)


def test_best_belief_prefers_confidence_over_lucky_mean() -> None:
    tree = _tree({
        0: (None, [0, 1, 0, 0]),
        1: (0, [1]),  # mean 1.0 from a single evaluation
        2: (0, [1] * 16 + [0] * 4),  # mean 0.8 over 20
        3: (1, []),  # never evaluated
    })
    assert best_belief(tree) == 2
    scores = belief_scores(tree)
    assert scores[1] == pytest.approx(math.sqrt(0.05))
    assert scores[3] == pytest.approx(0.05)
    assert best_belief(_tree({0: (None, [])})) is None


def test_best_belief_ties_go_to_the_older_node() -> None:
    same = _tree({0: (None, [1, 0]), 1: (0, [0, 1])})
    assert best_belief(same) == 0
