"""In-memory search state: the tree of agent versions and what is known about each.

`SearchState` is the single mutable record the scheduler keeps: nodes with parent and
children, each node's OWN 0/1 measures per task, the (node, task) pairs already seen
(finished or in flight), in-flight evaluations and expansions, and failed expansions.
Policies never see it directly: they get a `SearchView`, a read-only snapshot of
numpy arrays indexed by node *position* (0 = first node added, usually the seed).

Clade statistics are kept incrementally: recording a measure on a node adds it to the
descendant counters (`desc_successes/desc_failures`) of every ancestor, so pooled clade
counts are a vectorised sum at decision time and a node's own measures are never touched
(the public reference code extended the node's own list in place, inflating its counts).

Not thread-safe on its own; `hgm.loop.scheduler.Scheduler` serialises access.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class StateError(ValueError):
    """An update that contradicts the state (unknown node, duplicate pair, ...)."""


@dataclass(frozen=True)
class SearchView:
    """Read-only snapshot of the search state handed to policies.

    Arrays are indexed by node position (`node_ids[i]` is the id of position i) and
    are write-protected. They are views of the live state, so treat a `SearchView`
    as valid only for the decision it was made for.
    """

    node_ids: np.ndarray  # int64 [n]
    parent: np.ndarray  # int64 [n], position of the parent, -1 for a root
    depth: np.ndarray  # int64 [n]
    own_successes: np.ndarray  # int64 [n]
    own_failures: np.ndarray  # int64 [n]
    desc_successes: np.ndarray  # int64 [n]: sum over strict descendants' own measures
    desc_failures: np.ndarray  # int64 [n]
    n_children: np.ndarray  # int64 [n]
    n_seen: np.ndarray  # int64 [n]: tasks finished or in flight on the node
    pending_evals: np.ndarray  # int64 [n]: evaluations in flight per node
    pending_expansions_per_node: np.ndarray  # int64 [n]
    seen: np.ndarray  # bool [n, n_tasks]
    task_ids: tuple[str, ...]
    evals_completed: int
    evals_in_flight: int
    expansions_in_flight: int
    expansions_failed: int
    budget_evals: int | None
    budget_expansions: int | None = None  # cap on expansion attempts; None: no cap

    @property
    def n_nodes(self) -> int:
        return int(self.node_ids.shape[0])

    @property
    def n_tasks(self) -> int:
        return len(self.task_ids)

    @property
    def evals_used(self) -> int:
        """Evaluations finished plus in flight (what the budget is charged with)."""
        return self.evals_completed + self.evals_in_flight

    @property
    def own_evals(self) -> np.ndarray:
        return self.own_successes + self.own_failures

    def budget_left(self) -> int | None:
        if self.budget_evals is None:
            return None
        return max(0, self.budget_evals - self.evals_used)

    @property
    def expansion_attempts(self) -> int:
        """Expansions tried: succeeded (nodes beyond the root) + failed + in flight."""
        return self.n_nodes - 1 + self.expansions_failed + self.expansions_in_flight

    def expansions_left(self) -> int | None:
        """Expansion attempts the budget still allows (None: no cap)."""
        if self.budget_expansions is None:
            return None
        return max(0, self.budget_expansions - self.expansion_attempts)

    @property
    def can_expand(self) -> bool:
        """Whether the expansion budget allows starting one more expansion."""
        left = self.expansions_left()
        return left is None or left > 0

    def clade_counts(self, pseudo_cap: float) -> tuple[np.ndarray, np.ndarray]:
        """Pooled clade (successes, failures) per node, as float arrays.

        A node's own measures count as at most `pseudo_cap` pseudo-observations at its
        own mean once it has that many; all strict descendants' measures are added.
        Pure: nothing in the state changes.
        """
        s = self.own_successes.astype(float)
        f = self.own_failures.astype(float)
        n = s + f
        capped = n > pseudo_cap
        if capped.any():
            scale = np.where(capped, pseudo_cap / np.maximum(n, 1.0), 1.0)
            s = s * scale
            f = f * scale
        return s + self.desc_successes, f + self.desc_failures

    def position(self, node_id: int) -> int:
        hits = np.flatnonzero(self.node_ids == node_id)
        if hits.size == 0:
            raise StateError(f"unknown node {node_id}")
        return int(hits[0])


@dataclass
class _Arrays:
    parent: np.ndarray
    depth: np.ndarray
    own_s: np.ndarray
    own_f: np.ndarray
    desc_s: np.ndarray
    desc_f: np.ndarray
    n_children: np.ndarray
    n_seen: np.ndarray
    pending_evals: np.ndarray
    pending_exp: np.ndarray
    seen: np.ndarray

    @classmethod
    def empty(cls, capacity: int, n_tasks: int) -> _Arrays:
        ints = {name: np.zeros(capacity, dtype=np.int64) for name in cls.__dataclass_fields__ if name != "seen"}
        return cls(**ints, seen=np.zeros((capacity, n_tasks), dtype=bool))

    def grown(self, capacity: int) -> _Arrays:
        out = _Arrays.empty(capacity, self.seen.shape[1])
        n = self.parent.shape[0]
        for name in self.__dataclass_fields__:
            getattr(out, name)[:n] = getattr(self, name)
        return out


@dataclass
class SearchState:
    """The mutable search tree. Node ids are ints chosen by the caller (the archive)."""

    task_ids: tuple[str, ...]
    budget_evals: int | None = None
    budget_expansions: int | None = None
    expansions_failed: int = 0  # finished expansions that produced no child (reasons: in the archive)
    expansions_succeeded: int = 0
    eval_cost: float = 0.0
    expansion_cost: float = 0.0

    def __post_init__(self) -> None:
        self.task_ids = tuple(self.task_ids)
        if len(set(self.task_ids)) != len(self.task_ids):
            raise StateError("task ids must be unique")
        self._task_index = {t: i for i, t in enumerate(self.task_ids)}
        self._ids: list[int] = []
        self._index: dict[int, int] = {}
        self._children: list[list[int]] = []
        self._measures: list[list[tuple[int, int]]] = []
        self._a = _Arrays.empty(8, len(self.task_ids))
        self.evals_completed = 0
        self.evals_in_flight = 0
        self.expansions_in_flight = 0

    # ----------------------------------------------------------------- queries
    @property
    def n_nodes(self) -> int:
        return len(self._ids)

    @property
    def node_ids(self) -> list[int]:
        return list(self._ids)

    @property
    def evals_used(self) -> int:
        return self.evals_completed + self.evals_in_flight

    def has_node(self, node_id: int) -> bool:
        return node_id in self._index

    def parent_of(self, node_id: int) -> int | None:
        p = int(self._a.parent[self._pos(node_id)])
        return None if p < 0 else self._ids[p]

    def children_of(self, node_id: int) -> list[int]:
        return [self._ids[c] for c in self._children[self._pos(node_id)]]

    def own_measures(self, node_id: int) -> list[tuple[str, int]]:
        """The node's own (task id, 0/1) measures in the order they were recorded."""
        return [(self.task_ids[t], v) for t, v in self._measures[self._pos(node_id)]]

    def own_counts(self, node_id: int) -> tuple[int, int]:
        i = self._pos(node_id)
        return int(self._a.own_s[i]), int(self._a.own_f[i])

    def is_seen(self, node_id: int, task_id: str) -> bool:
        return bool(self._a.seen[self._pos(node_id), self._task(task_id)])

    def view(self) -> SearchView:
        """A read-only view of the live arrays (no copy): valid until the next update."""
        return self._view(copy=False)

    def snapshot(self) -> SearchView:
        """A read-only copy that stays valid after later updates (for display, other threads)."""
        return self._view(copy=True)

    def _view(self, copy: bool) -> SearchView:
        n = self.n_nodes
        a = self._a

        def ro(arr: np.ndarray) -> np.ndarray:
            v = arr[:n].copy() if copy else arr[:n]
            v.flags.writeable = False
            return v

        ids = np.asarray(self._ids, dtype=np.int64)
        ids.flags.writeable = False
        return SearchView(
            node_ids=ids,
            parent=ro(a.parent),
            depth=ro(a.depth),
            own_successes=ro(a.own_s),
            own_failures=ro(a.own_f),
            desc_successes=ro(a.desc_s),
            desc_failures=ro(a.desc_f),
            n_children=ro(a.n_children),
            n_seen=ro(a.n_seen),
            pending_evals=ro(a.pending_evals),
            pending_expansions_per_node=ro(a.pending_exp),
            seen=ro(a.seen),
            task_ids=self.task_ids,
            evals_completed=self.evals_completed,
            evals_in_flight=self.evals_in_flight,
            expansions_in_flight=self.expansions_in_flight,
            expansions_failed=self.expansions_failed,
            budget_evals=self.budget_evals,
            budget_expansions=self.budget_expansions,
        )

    # ----------------------------------------------------------------- updates
    def add_node(self, node_id: int, parent_id: int | None) -> None:
        """Add a node; its parent (if any) must already exist."""
        if node_id in self._index:
            raise StateError(f"node {node_id} already exists")
        p = -1 if parent_id is None else self._pos(parent_id)
        i = len(self._ids)
        if i >= self._a.parent.shape[0]:
            self._a = self._a.grown(2 * self._a.parent.shape[0])
        self._ids.append(node_id)
        self._index[node_id] = i
        self._children.append([])
        self._measures.append([])
        self._a.parent[i] = p
        self._a.depth[i] = 0 if p < 0 else self._a.depth[p] + 1
        if p >= 0:
            self._children[p].append(i)
            self._a.n_children[p] += 1

    def begin_eval(self, node_id: int, task_id: str) -> None:
        """Mark (node, task) as in flight; a pair is never started twice."""
        i, t = self._pos(node_id), self._task(task_id)
        if self._a.seen[i, t]:
            raise StateError(f"task {task_id!r} was already given to node {node_id}")
        self._a.seen[i, t] = True
        self._a.n_seen[i] += 1
        self._a.pending_evals[i] += 1
        self.evals_in_flight += 1

    def cancel_eval(self, node_id: int, task_id: str) -> None:
        """Forget an in-flight evaluation (abandoned): the pair becomes unseen again."""
        i, t = self._pos(node_id), self._task(task_id)
        if not self._a.seen[i, t] or self._a.pending_evals[i] <= 0:
            raise StateError(f"no evaluation of task {task_id!r} on node {node_id} is in flight")
        if any(tt == t for tt, _ in self._measures[i]):
            raise StateError(f"task {task_id!r} on node {node_id} already finished")
        self._a.seen[i, t] = False
        self._a.n_seen[i] -= 1
        self._a.pending_evals[i] -= 1
        self.evals_in_flight -= 1

    def record_eval(self, node_id: int, task_id: str, success: bool, *, in_flight: bool | None = None, cost: float = 0.0) -> None:
        """Record a finished 0/1 measure. `in_flight` defaults to whether the pair was begun.

        Recording a pair that was never begun is allowed (rebuilding a state from the
        archive on resume); recording a pair twice is an error.
        """
        i, t = self._pos(node_id), self._task(task_id)
        if any(tt == t for tt, _ in self._measures[i]):
            raise StateError(f"task {task_id!r} on node {node_id} was already recorded")
        was_begun = bool(self._a.seen[i, t]) if in_flight is None else in_flight
        if was_begun:
            if self._a.pending_evals[i] <= 0:
                raise StateError(f"no evaluation in flight on node {node_id}")
            self._a.pending_evals[i] -= 1
            self.evals_in_flight -= 1
        else:
            self._a.seen[i, t] = True
            self._a.n_seen[i] += 1
        v = 1 if success else 0
        self._measures[i].append((t, v))
        own, desc = (self._a.own_s, self._a.desc_s) if v else (self._a.own_f, self._a.desc_f)
        own[i] += 1
        p = int(self._a.parent[i])
        while p >= 0:
            desc[p] += 1
            p = int(self._a.parent[p])
        self.evals_completed += 1
        self.eval_cost += cost

    def begin_expansion(self, node_id: int) -> None:
        self._a.pending_exp[self._pos(node_id)] += 1
        self.expansions_in_flight += 1

    def end_expansion(self, parent_id: int, child_id: int | None, *, cost: float = 0.0) -> None:
        """Finish an in-flight expansion: add the child, or count the failure."""
        i = self._pos(parent_id)
        if self._a.pending_exp[i] <= 0:
            raise StateError(f"no expansion of node {parent_id} is in flight")
        if child_id is not None:
            self.add_node(child_id, parent_id)
            self.expansions_succeeded += 1
        else:
            self.expansions_failed += 1
        self._a.pending_exp[i] -= 1
        self.expansions_in_flight -= 1
        self.expansion_cost += cost

    def cancel_expansion(self, parent_id: int) -> None:
        i = self._pos(parent_id)
        if self._a.pending_exp[i] <= 0:
            raise StateError(f"no expansion of node {parent_id} is in flight")
        self._a.pending_exp[i] -= 1
        self.expansions_in_flight -= 1

    def next_node_id(self) -> int:
        """A fresh id (max + 1); the real loop takes ids from the archive instead."""
        return max(self._ids, default=-1) + 1

    # ----------------------------------------------------------------- helpers
    def _pos(self, node_id: int) -> int:
        try:
            return self._index[node_id]
        except KeyError:
            raise StateError(f"unknown node {node_id}") from None

    def _task(self, task_id: str) -> int:
        try:
            return self._task_index[task_id]
        except KeyError:
            raise StateError(f"unknown task {task_id!r}") from None

    def task_position(self, task_id: str) -> int:
        return self._task(task_id)


def state_from_sequence(task_ids: Sequence[str], root_id: int = 0) -> SearchState:
    """A state with one root node (the seed agent) and the given tasks."""
    st = SearchState(tuple(task_ids))
    st.add_node(root_id, None)
    return st
