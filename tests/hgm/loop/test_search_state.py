"""Search state: tree bookkeeping, incremental clade counters, read-only views."""

from __future__ import annotations

import numpy as np
import pytest

from hgm.search.state import SearchState, StateError

TASKS = ("a", "b", "c", "d")


def test_clade_counters_match_a_brute_force_walk() -> None:
    rng = np.random.default_rng(0)
    st = SearchState(tuple(f"t{i}" for i in range(25)))
    st.add_node(0, None)
    for node in range(1, 40):
        st.add_node(node, int(rng.integers(node)))
    for _ in range(300):
        node = int(rng.integers(40))
        free = [t for t in st.task_ids if not st.is_seen(node, t)]
        if free:
            st.record_eval(node, free[0], bool(rng.random() < 0.3))
    view = st.view()

    def descendants(n: int) -> list[int]:
        out = []
        for c in st.children_of(n):
            out += [c, *descendants(c)]
        return out

    for n in st.node_ids:
        succ = sum(v for d in descendants(n) for _, v in st.own_measures(d))
        total = sum(len(st.own_measures(d)) for d in descendants(n))
        pos = view.position(n)
        assert view.desc_successes[pos] == succ
        assert view.desc_failures[pos] == total - succ
        assert view.own_evals[pos] == len(st.own_measures(n))


def test_view_is_read_only() -> None:
    st = SearchState(TASKS)
    st.add_node(0, None)
    view = st.view()
    with pytest.raises(ValueError):
        view.own_successes[0] = 5
    with pytest.raises(ValueError):
        view.seen[0, 0] = True
    st.record_eval(0, "a", True)  # the live state is still writable
    assert st.own_counts(0) == (1, 0)


def test_bad_updates_are_refused() -> None:
    st = SearchState(TASKS)
    st.add_node(0, None)
    with pytest.raises(StateError, match="unknown node"):
        st.add_node(2, 1)
    with pytest.raises(StateError, match="already exists"):
        st.add_node(0, None)
    st.record_eval(0, "a", True)
    with pytest.raises(StateError, match="already"):
        st.record_eval(0, "a", False)
    with pytest.raises(StateError, match="already"):
        st.begin_eval(0, "a")
    with pytest.raises(StateError, match="unknown task"):
        st.begin_eval(0, "zzz")
    with pytest.raises(StateError, match="no expansion"):
        st.end_expansion(0, 1)
    with pytest.raises(StateError):
        SearchState(("x", "x"))


def test_rebuild_from_records_for_resume() -> None:
    """The loop rebuilds a state from the archive: nodes, then finished measures."""
    st = SearchState(TASKS)
    st.add_node(10, None)
    st.add_node(12, 10)
    st.record_eval(12, "b", True)
    st.record_eval(10, "a", False)
    assert st.evals_completed == 2 and st.evals_in_flight == 0
    assert st.is_seen(12, "b") and not st.is_seen(12, "a")
    assert st.parent_of(12) == 10 and st.children_of(10) == [12]
    assert st.next_node_id() == 13


def test_growth_beyond_initial_capacity() -> None:
    st = SearchState(TASKS)
    st.add_node(0, None)
    for n in range(1, 100):
        st.add_node(n, n - 1)
    st.record_eval(99, "a", True)
    view = st.view()
    assert view.n_nodes == 100 and view.depth[99] == 99
    assert view.desc_successes[0] == 1 and view.desc_successes[99] == 0


def test_snapshot_survives_later_updates_but_view_is_live() -> None:
    st = SearchState(TASKS)
    st.add_node(0, None)
    snap, live = st.snapshot(), st.view()
    st.record_eval(0, "a", True)
    assert snap.own_successes[0] == 0 and snap.evals_completed == 0
    assert live.own_successes[0] == 1
    with pytest.raises(ValueError):
        snap.own_failures[0] = 3
