"""How the loop carries out a job: an evaluation or an expansion of an agent version.

`SandboxJobHandler` turns a scheduler `Job` into a call of the one evaluation path
(`hgm.evaluation.evaluate`) or of one expansion (`hgm.evolve.expand`), with the version's
source checked out from the archive, the call tags that key the cost book, and the
run directory's artifact layout. It never writes a job's result to the archive (the
executor does); its follow-up on a recorded result (`after_record`) keeps the run's
lessons memory: comparisons of children with their parents, the shared bank.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from archive.records import EvalRecord
from archive.run import Run
from sandbox.tracking import TrackingBackend

from hgm.evaluation.evaluate import EvalSetup, evaluate
from hgm.evolve.expand import ExpandSetup, ExpansionOutcome, expand
from hgm.evolve.lessons import EvalView
from hgm.evolve.memory import PURPOSE as DISTILL_PURPOSE
from hgm.gateway.costs import CostBook
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
    ) -> None:
        self.run = run
        self.run_dir = Path(run.path)
        self.eval_setup = eval_setup
        self.expand_setup = expand_setup
        self.costs = costs
        self.backend = backend
        self.session_id = session_id
        self.session_index = session_index
        self.seed = seed
        self.checkouts = CheckoutCache(run, self.run_dir / "work" / "agents")

    def job_key(self, job: Job) -> str:
        return f"{self.session_id}-{job.id}"

    def job_cost(self, job: Job) -> tuple[float, int]:
        """Dollars and tokens the gateway has counted for `job` so far."""
        return self.costs.job(self.job_key(job))

    def cancel_all(self) -> None:
        """Abort every sandbox in use (work is being abandoned)."""
        self.backend.close_all()

    def tags(self, job: Job, node_id: int, **extra: object) -> dict[str, object]:
        return {"run": self.run_dir.name, "job": self.job_key(job), "node": node_id, **extra}

    def evaluate(self, job: Job) -> EvalRecord:
        action = job.action
        assert isinstance(action, Evaluate)
        task = self.expand_setup.tasks[action.task_id]
        out_dir = self.run_dir / "evals" / f"node{action.node_id}" / f"{_safe(action.task_id)}-{self.job_key(job)}"
        tags = self.tags(job, action.node_id, task=action.task_id, purpose="solve")
        return evaluate(self.eval_setup, action.node_id, self.checkouts.get(action.node_id), task, out_dir, tags)

    def expand(self, job: Job) -> ExpansionOutcome:
        action = job.action
        assert isinstance(action, Expand)
        parent = action.node_id
        # seeded by run seed, session number and job number: a rerun with the same seed repeats
        rng = random.Random(f"{self.seed}-{self.session_index}-{job.id}")
        work_dir = self.run_dir / "expansions" / f"node{parent}-{self.job_key(job)}"
        key = self.job_key(job)
        return expand(self.expand_setup, parent, self.checkouts.get(parent), self.eval_views(parent), rng,
                      work_dir, self.tags(job, parent), lambda: self.costs.job(key),
                      lambda: self.costs.provider_failures(key))

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
        """The node's evaluations as lesson picking sees them (artifact paths made absolute)."""
        return [
            EvalView(task_id=row["task_id"], status=row["status"], detail=row.get("detail") or "",
                     trajectory_path=self._abs(row.get("trajectory_path")), log_path=self._abs(row.get("log_path")))
            for row in self.run.evaluations(node_id)
        ]

    def _abs(self, path: Any) -> str | None:
        if not path:
            return None
        p = Path(path)
        return str(p if p.is_absolute() else self.run_dir / p)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]
