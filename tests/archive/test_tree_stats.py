"""The in-memory tree and the interval shown by `hgm show`."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive import EvalRecord, ExpansionRecord, Run
from archive.stats import wilson_interval


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
