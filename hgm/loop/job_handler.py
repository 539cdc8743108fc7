"""How the loop carries out a job: an evaluation or an expansion of an agent version.

`SandboxJobHandler` turns a scheduler `Job` into a call of the one evaluation path
(`hgm.evaluation.evaluate`) or of one expansion (`hgm.evolve.expand`), with the version's
source checked out from the archive, the call tags that key the cost book, and the
run directory's artifact layout. It never writes a job's result to the archive (the
executor does); its follow-up on a recorded result (`after_record`) keeps the run's
lessons memory: comparisons of children with their parents, the shared bank.

What is not the agent's doing is never reported as a measurement: an attempt whose model
call the run's budget refused comes back `abandoned` (detail `RUN_BUDGET_SPENT: ...`), and
an expansion broken by its sandbox or the host (a failed container, an engine that went
away, a full disk) comes back as an infrastructure outcome, not a failed expansion. When
a job ends, the gateway identities (sockets) it used are closed.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any, Callable

from archive.records import EvalRecord
from archive.run import Run
from archive.space import mentions_full_disk
from sandbox.tracking import TrackingBackend

from hgm.evaluation.evaluate import EvalSetup, evaluate
from hgm.evolve.expand import ExpandSetup, ExpansionOutcome, expand
from hgm.evolve.lessons import EvalView
from hgm.evolve.operators import Version
from hgm.evolve.memory import PURPOSE as DISTILL_PURPOSE
from hgm.gateway.costs import CostBook
from hgm.gateway.records import RUN_BUDGET_SPENT
from hgm.loop.checkouts import CheckoutCache
from hgm.loop.scheduler import Job
from hgm.search.actions import Evaluate, Expand


class SandboxJobHandler:
    """Carries out Evaluate and Expand jobs in sandboxes, for one session of a run."""

    def __init__(
        self,
        *,
        run: Run,
        eval_setup: EvalSetup,
        expand_setup: ExpandSetup,
        costs: CostBook,
        backend: TrackingBackend,
        session_id: str,
        session_index: int = 0,
        seed: int = 0,
        release: Callable[..., object] | None = None,
    ) -> None:
        """`release(job=KEY)` closes what the gateway opened for a job (its identity sockets)."""
        self.run = run
        self.run_dir = Path(run.path)
        self.eval_setup = eval_setup
        self.expand_setup = expand_setup
        self.costs = costs
        self.backend = backend
        self.session_id = session_id
        self.session_index = session_index
        self.seed = seed
        self.release = release
        self.checkouts = CheckoutCache(run, self.run_dir / "work" / "agents")

    def job_key(self, job: Job) -> str:
        return f"{self.session_id}-{job.id}"

    def job_cost(self, job: Job) -> tuple[float, int]:
        """Dollars and tokens the gateway has counted for `job` so far."""
        return self.costs.job(self.job_key(job))

    def cancel_all(self) -> None:
        """Abort every sandbox in use (work is being abandoned)."""
        self.backend.close_all()

    def infra_problem(self) -> str | None:
        """Why sandboxes cannot run right now (the engine does not answer), or None."""
        probe = getattr(self.backend, "problem", None)
        return probe() if probe is not None else None

    def _done(self, job: Job) -> None:
        if self.release is not None:
            self.release(job=self.job_key(job))

    def tags(self, job: Job, node_id: int, **extra: object) -> dict[str, object]:
        return {"run": self.run_dir.name, "job": self.job_key(job), "node": node_id, **extra}

    def evaluate(self, job: Job) -> EvalRecord:
        action = job.action
        assert isinstance(action, Evaluate)
        task = self.expand_setup.tasks[action.task_id]
        out_dir = self.run_dir / eval_dir(action.node_id, action.task_id, self.job_key(job))
        tags = self.tags(job, action.node_id, task=action.task_id, purpose="solve")
        try:
            record = evaluate(self.eval_setup, action.node_id, self.checkouts.get(action.node_id), task, out_dir, tags)
        finally:
            self._done(job)
        refused = self.costs.run_budget_refused(self.job_key(job))
        if refused and record.utility is not None:  # cut short by the run, not by the agent
            record = dataclasses.replace(record, status="abandoned", detail=f"{RUN_BUDGET_SPENT}: {refused}"[:2000])
        return record

    def expand(self, job: Job) -> ExpansionOutcome:
        action = job.action
        assert isinstance(action, Expand)
        parent = action.node_id
        rng = random.Random(expansion_seed(self.seed, self.session_index, job))
        work_dir = self.run_dir / expansion_dir(parent, self.job_key(job))
        key = self.job_key(job)
        try:
            outcome = expand(self.expand_setup, parent, self.checkouts.get(parent), self.eval_views(parent), rng,
                             work_dir, self.tags(job, parent), lambda: self.costs.job(key),
                             lambda: self.costs.provider_failures(key), peers=ArchivePeers(self.run, self.checkouts))
        finally:
            self._done(job)
        refused = self.costs.run_budget_refused(key)
        if refused and not outcome.infra and outcome.record.status != "ok":
            return _as_infra(outcome, f"{RUN_BUDGET_SPENT}: {refused}")
        if outcome.record.status == "failed" and broken_by_infrastructure(outcome.record.reason):
            return _as_infra(outcome, outcome.record.reason)
        return outcome

    def after_record(self, job: Job, result: EvalRecord | ExpansionOutcome) -> None:
        """Once a result is recorded: memory comparisons after an evaluation (may call the
        model, tagged purpose `distill`), the bank after an expansion."""
        memory = self.expand_setup.memory
        if memory is None:
            return
        if isinstance(result, EvalRecord):
            memory.after_eval(result.node_id, lambda child: self.tags(job, child, purpose=DISTILL_PURPOSE))
        elif result.memory is not None and result.memory.produced:
            memory.sync_bank([item.uid for item in result.memory.produced])

    def eval_views(self, node_id: int) -> list[EvalView]:
        return eval_views(self.run, node_id)


def eval_views(run: Run, node_id: int) -> list[EvalView]:
    """The node's evaluations as lesson picking sees them (artifact paths made absolute)."""
    run_dir = Path(run.path)

    def absolute(path: Any) -> str | None:
        if not path:
            return None
        p = Path(path)
        return str(p if p.is_absolute() else run_dir / p)

    return [
        EvalView(task_id=row["task_id"], status=row["status"], detail=row.get("detail") or "",
                 trajectory_path=absolute(row.get("trajectory_path")), log_path=absolute(row.get("log_path")))
        for row in run.evaluations(node_id)
    ]


def eval_dir(node_id: int, task_id: str, job_key: str) -> Path:
    """Where an evaluation's artifacts go, relative to the run directory."""
    return Path("evals") / f"node{node_id}" / f"{_safe(task_id)}-{job_key}"


def expansion_dir(parent_id: int, job_key: str) -> Path:
    """Where an expansion's artifacts go, relative to the run directory."""
    return Path("expansions") / f"node{parent_id}-{job_key}"


def expansion_seed(seed: int, session_index: int, job: Job) -> str:
    """The seed of an expansion's RNG: run seed, session number and job number, so a rerun repeats."""
    return f"{seed}-{session_index}-{job.id}"


class ArchivePeers:
    """What an expansion may read of the other versions (`hgm.evolve.operators.Peers`), from the archive."""

    def __init__(self, run: Run, checkouts: CheckoutCache) -> None:
        self._run, self._checkouts = run, checkouts

    def versions(self) -> dict[int, Version]:
        run = self._run
        tree = run.tree()
        clade = tree.clade_counts()
        outcomes: dict[int, tuple[set[str], set[str]]] = {n: (set(), set()) for n in tree.nodes}
        for row in run.evaluations():
            if row["utility"] is not None and row["node_id"] in outcomes:
                outcomes[row["node_id"]][0 if row["utility"] else 1].add(row["task_id"])
        return {n.id: Version(n.id, n.parent_id, *clade.get(n.id, (0, 0)), frozenset(outcomes[n.id][0]),
                              frozenset(outcomes[n.id][1])) for n in tree.nodes.values()}

    def source(self, node_id: int) -> Path:
        return self._checkouts.get(node_id)


# How `hgm.evolve.expand` words the failures of the machinery around the agent: its
# sandbox or the host (self_improve raises SandboxError/ImproveError), not the agent's edit.
INFRA_REASONS = ("sandbox failed:", "preparation failed:")


def broken_by_infrastructure(reason: str) -> bool:
    """True if a failed expansion's reason is the infrastructure's doing (or a full disk)."""
    return reason.startswith(INFRA_REASONS) or mentions_full_disk(reason)


def _as_infra(outcome: ExpansionOutcome, reason: str) -> ExpansionOutcome:
    record = dataclasses.replace(outcome.record, status="abandoned", reason=reason[:2000])
    return dataclasses.replace(outcome, record=record, child_dir=None, infra=True)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]
