"""The execution-agnostic scheduler core: search state + policy + budgets.

Executors (the real loop's worker threads, the simulator's virtual clock) drive it the
same way:

    job = scheduler.dispatch()          # Job | Wait | None
    None  -> no more work will be handed out: finish what you hold and exit
    Wait  -> nothing to start now: ask again after a change (`next_job(timeout)` does
             both: it blocks until a job can start or the search is over)
    Job   -> run job.action (Evaluate or Expand), then report exactly once:
             scheduler.complete_eval(job, success, cost=...)
             scheduler.complete_expansion(job, child_id or None, cost=...)
             scheduler.abandon(job)      # shutting down: the work is re-queued on resume

Guarantees (all methods are thread-safe, serialised by one lock):
- the evaluation budget is reserved when an evaluation is dispatched, so the number of
  evaluations finished plus in flight never exceeds `budget_evals`;
- a (node, task) pair is never dispatched twice (abandoned pairs become free again);
- expansion attempts (succeeded + failed + in flight) never exceed `budget_expansions`
  (None: no cap); policies see what is left as `view.can_expand` / `view.expansions_left()`
  and the scheduler refuses an Expand beyond the cap. When the policy has nothing to
  start (nothing evaluable, no expansion allowed) and nothing is in flight, `dispatch`
  returns None, so every search ends;
- in-flight evaluations and expansions are visible to the policy through the view;
- failed expansions are counted in `state.expansions_failed` (their reasons are in the archive).

Optionally the first node (the seed) is measured on `seed_evals` tasks (the first ones of
the fixed task order) before the policy is consulted; these count against the budget.

With a confirmation plan (`hgm.search.confirm`), the held-out tasks (the last columns of
the state's task order) are hidden from the policy, which sees the search's share of the
budget only. When the search is over (that share is spent, or the policy has nothing more
to start) and its evaluations have finished, the scheduler hands out the confirmation's
held-out evaluations itself; the run ends when the confirmation is done.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from dataclasses import dataclass

import numpy as np

from hgm.policies.base import TaskPicker
from hgm.search.actions import Evaluate, Expand, Policy, Wait
from hgm.search.confirm import ConfirmPlan, HoldoutPhase
from hgm.search.state import SearchState, SearchView


class SchedulerError(RuntimeError):
    """A completion that does not match a job in flight, or an invalid policy action."""


@dataclass(frozen=True)
class Job:
    """One unit of dispatched work. `seed` marks a pre-search evaluation of the seed,
    `holdout` an evaluation of the confirmation on a held-out task."""

    id: int
    action: Evaluate | Expand
    seed: bool = False
    holdout: bool = False

    @property
    def is_eval(self) -> bool:
        return isinstance(self.action, Evaluate)


class Scheduler:
    """Holds the search state, the policy and the budget; hands out and takes back jobs."""

    def __init__(
        self,
        state: SearchState,
        policy: Policy,
        *,
        budget_evals: int,
        budget_expansions: int | None = None,
        rng: np.random.Generator | int | None = None,
        seed_evals: int = 0,
        task_order_seed: int = 0,
        confirmation: ConfirmPlan | None = None,
    ) -> None:
        if budget_evals < 0:
            raise ValueError("budget_evals must be >= 0")
        if budget_expansions is not None and budget_expansions < 0:
            raise ValueError("budget_expansions must be >= 0 or None")
        if seed_evals < 0:
            raise ValueError("seed_evals must be >= 0")
        if state.n_nodes == 0:
            raise ValueError("the search state needs a seed node before scheduling")
        self.state = state
        self.state.budget_evals = budget_evals
        self.state.budget_expansions = budget_expansions
        self.policy = policy
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.seed_evals = min(seed_evals, len(state.task_ids))
        self._seed_tasks = TaskPicker(random_level=0.0, order_seed=task_order_seed)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self._in_flight: dict[int, Job] = {}
        self._stopped = False
        self._exhausted = False  # the policy had nothing to start and nothing was in flight
        self._seeded = self.seed_evals == 0
        self.confirmation = HoldoutPhase(confirmation) if confirmation is not None else None
        self._n_search_tasks = len(state.task_ids)
        self._confirming = False  # the search is over; held-out evaluations are being handed out
        self._confirmed = False
        if confirmation is not None:
            self._setup_confirmation(confirmation)

    # ------------------------------------------------------------------ queries
    @property
    def budget_evals(self) -> int:
        return int(self.state.budget_evals or 0)

    @property
    def budget_left(self) -> int:
        """Evaluations the run may still start (0 once a confirmation is done: its unused reserve is not spent)."""
        with self._lock:
            return 0 if self._confirmed else max(0, self.budget_evals - self.state.evals_used)

    @property
    def confirming(self) -> bool:
        """True once the search is over and the confirmation's held-out evaluations have begun."""
        return self._confirming

    @property
    def stopped(self) -> bool:
        return self._stopped

    def in_flight(self) -> list[Job]:
        with self._lock:
            return list(self._in_flight.values())

    def view(self) -> SearchView:
        """A copied snapshot for display or final choice, safe to keep outside the lock."""
        with self._lock:
            return self.state.snapshot()

    @property
    def finished(self) -> bool:
        """True once nothing more will be dispatched and nothing is in flight."""
        with self._lock:
            return not self._in_flight and (self._stopped or self._exhausted or self.budget_left == 0)

    def policy_view(self) -> SearchView:
        """What the policy sees: the live view, without held-out tasks and with the search's budget."""
        view = self.state.view()
        if self.confirmation is None:
            return view
        n = self._n_search_tasks
        return dataclasses.replace(view, seen=view.seen[:, :n], task_ids=view.task_ids[:n],
                                   budget_evals=self.confirmation.plan.search_budget)

    # ------------------------------------------------------------------ dispatch
    def dispatch(self) -> Job | Wait | None:
        """The next job, `Wait()` if nothing can start now, or None when the search is over."""
        with self._lock:
            if self._stopped or self.state.evals_used >= self.budget_evals:
                return None
            if self._confirming:
                return self._confirmation_job()
            if self.confirmation is not None and self.state.evals_used >= self.confirmation.plan.search_budget:
                return self._end_search()
            action = self._seed_action()
            seed = action is not None
            if action is None:
                action = self.policy.next_action(self.policy_view(), self.rng)
            if isinstance(action, Wait):
                if self._in_flight:
                    return Wait()
                if self.confirmation is not None:
                    return self._end_search()
                self._exhausted = True
                return None
            self._check(action)
            if isinstance(action, Evaluate):
                self.state.begin_eval(action.node_id, action.task_id)
            else:
                self.state.begin_expansion(action.node_id)
            job = Job(next(self._ids), action, seed)
            self._in_flight[job.id] = job
            return job

    def next_job(self, timeout: float | None = None) -> Job | Wait | None:
        """Like `dispatch`, but on `Wait` block until something changes and try again.

        Returns a Job, None when the search is over, or `Wait()` if `timeout` seconds pass
        first. Checking and waiting happen under one lock, so no completion is missed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                job = self.dispatch()
                if not isinstance(job, Wait):
                    return job
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return job
                self._changed.wait(remaining)

    def _setup_confirmation(self, plan: ConfirmPlan) -> None:
        n = len(self.state.task_ids) - len(plan.holdout)
        if n < 1 or self.state.task_ids[n:] != plan.holdout:
            raise ValueError("a confirming search state must list its held-out tasks last, in the plan's order "
                             "(see hgm.search.confirm.search_first)")
        if plan.search_budget > self.budget_evals:
            raise ValueError("the confirmation's search budget exceeds the evaluation budget")
        self._n_search_tasks = n
        # a held-out task already measured (a resumed run): the search ended in an earlier session
        self._confirming = bool(self.state.view().seen[:, n:].any())

    def _end_search(self) -> Job | Wait | None:
        """The search is over: start the confirmation once the search's evaluations have finished."""
        if self.state.evals_in_flight:
            return Wait()
        self._confirming = True
        return self._confirmation_job()

    def _confirmation_job(self) -> Job | Wait | None:
        assert self.confirmation is not None
        action = self.confirmation.next_action(self.state)
        if action is None:
            if self._in_flight:
                return Wait()
            self._confirmed = self.confirmation.done(self.state)
            self._exhausted = True
            return None
        self.state.begin_eval(action.node_id, action.task_id)
        job = Job(next(self._ids), action, holdout=True)
        self._in_flight[job.id] = job
        return job

    def _seed_action(self) -> Evaluate | Wait | None:
        if self._seeded:
            return None
        root = self.state.node_ids[0]
        view = self.policy_view()
        if view.n_seen[0] < min(self.seed_evals, view.n_tasks):
            return Evaluate(root, self._seed_tasks.next_in_order(view, 0))
        if view.pending_evals[0] > 0 and view.own_evals[0] < self.seed_evals:
            return Wait()
        self._seeded = True
        return None

    def _check(self, action: object) -> None:
        if isinstance(action, Evaluate):
            if not self.state.has_node(action.node_id):
                raise SchedulerError(f"policy asked to evaluate unknown node {action.node_id}")
            if self.state.is_seen(action.node_id, action.task_id):
                raise SchedulerError(f"policy asked for ({action.node_id}, {action.task_id!r}) twice")
            if self.state.task_position(action.task_id) >= self._n_search_tasks:
                raise SchedulerError(f"policy asked for held-out task {action.task_id!r}")
        elif isinstance(action, Expand):
            if not self.state.has_node(action.node_id):
                raise SchedulerError(f"policy asked to expand unknown node {action.node_id}")
            if not self.state.view().can_expand:
                raise SchedulerError(f"policy asked to expand node {action.node_id} beyond the expansion budget "
                                     f"({self.state.budget_expansions} attempts)")
        else:
            raise SchedulerError(f"policy returned {action!r}, not Evaluate, Expand or Wait")

    # ------------------------------------------------------------------ completion
    def complete_eval(self, job: Job, success: bool, *, cost: float = 0.0) -> None:
        """Record the 0/1 outcome of an evaluation job."""
        with self._lock:
            action = self._take(job, Evaluate)
            self.state.record_eval(action.node_id, action.task_id, bool(success), in_flight=True, cost=cost)
            self._changed.notify_all()

    def complete_expansion(self, job: Job, child_id: int | None, *, cost: float = 0.0) -> None:
        """Record an expansion: the new child's id, or None when it failed."""
        with self._lock:
            action = self._take(job, Expand)
            if child_id is not None and self.state.has_node(child_id):
                self._in_flight[job.id] = job
                raise SchedulerError(f"child id {child_id} already exists")
            self.state.end_expansion(action.node_id, child_id, cost=cost)
            self._changed.notify_all()

    def abandon(self, job: Job) -> None:
        """Give back a job that will not finish (shutdown): its budget and pair are freed."""
        with self._lock:
            action = self._take(job, (Evaluate, Expand))
            if isinstance(action, Evaluate):
                self.state.cancel_eval(action.node_id, action.task_id)
            else:
                self.state.cancel_expansion(action.node_id)
            self._changed.notify_all()

    def stop(self) -> None:
        """Dispatch nothing more; jobs in flight may still be completed or abandoned."""
        with self._lock:
            self._stopped = True
            self._changed.notify_all()

    def notify(self) -> None:
        """Wake everyone waiting for a change (e.g. the sandbox engine answers again)."""
        with self._changed:
            self._changed.notify_all()

    def wait_for_change(self, timeout: float | None = None) -> bool:
        """Block until a job completes, is abandoned, or the scheduler stops."""
        with self._changed:
            return self._changed.wait(timeout)

    def _take(self, job: Job, kind: type | tuple[type, ...]) -> Evaluate | Expand:
        held = self._in_flight.get(job.id)
        if held is None or held != job:
            raise SchedulerError(f"job {job.id} is not in flight (completed twice or never dispatched)")
        if not isinstance(job.action, kind):
            raise SchedulerError(f"job {job.id} is a {type(job.action).__name__}, not what was reported")
        del self._in_flight[job.id]
        return job.action
