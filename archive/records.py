"""Plain records written to the archive: one finished evaluation (with its attempts), one
expansion attempt, one admission decision of the gate."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from archive.schema import ATTEMPT_OPERATORS, EVAL_STATUSES, EXPANSION_STATUSES, UNMEASURED_EVAL_STATUSES


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One agent attempt of an evaluation that made several: how it came about, what the
    selection saw of it, and whether it was the one graded."""

    index: int  # 1-based, in the order the attempts ran
    generation: int
    operator: str  # sample | revise | recombine | refine
    parents: tuple[int, ...] = ()  # the attempts (by index) its guidance was written from
    selected: bool = False
    exit_reason: str = ""
    tokens: int = 0
    cost_usd: float = 0.0
    agent_s: float | None = None
    patch_path: str | None = None
    trajectory_path: str | None = None
    guidance: str = ""
    summary: Mapping[str, Any] = field(default_factory=dict)
    features: Mapping[str, Any] = field(default_factory=dict)
    detail: str = ""

    def __post_init__(self) -> None:
        if self.operator not in ATTEMPT_OPERATORS:
            raise ValueError(f"unknown attempt operator {self.operator!r}; expected one of {', '.join(ATTEMPT_OPERATORS)}")

    def row(self, evaluation_id: int) -> tuple:
        return (
            evaluation_id, self.index, self.generation, self.operator, json.dumps(list(self.parents)),
            int(self.selected), self.exit_reason, self.tokens, self.cost_usd, self.agent_s, self.patch_path,
            self.trajectory_path, self.guidance, json.dumps(dict(self.summary), default=str),
            json.dumps(dict(self.features), default=str), self.detail,
        )


ATTEMPT_COLUMNS = (
    "evaluation_id, idx, generation, operator, parents, selected, exit_reason, tokens, cost_usd, agent_s, "
    "patch_path, trajectory_path, guidance, summary, features, detail"
)


@dataclass(frozen=True, slots=True)
class EvalRecord:
    """A finished evaluation of one node on one task.

    The utility follows from the status: 1 for `resolved`, None (not a measurement) for
    `error_infra`, `abandoned` and `contaminated`, 0 for every other outcome. `flags` are
    facts about how it was graded (e.g. `machinery:strip`: test machinery was stripped
    from the patch), stored space-separated.
    """

    node_id: int
    task_id: str
    status: str
    started: float | None = None
    finished: float = field(default_factory=time.time)
    agent_s: float | None = None
    grade_s: float | None = None
    total_s: float | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    trajectory_path: str | None = None
    log_path: str | None = None
    detail: str = ""
    flags: tuple[str, ...] = ()
    attempts: tuple[AttemptRecord, ...] = ()  # every attempt when the evaluation made several

    def __post_init__(self) -> None:
        if any(not f or " " in f for f in self.flags):
            raise ValueError(f"evaluation flags must be non-empty words without spaces, got {self.flags!r}")
        if self.status not in EVAL_STATUSES:
            raise ValueError(f"unknown evaluation status {self.status!r}; expected one of {', '.join(EVAL_STATUSES)}")

    @property
    def utility(self) -> int | None:
        if self.status in UNMEASURED_EVAL_STATUSES:
            return None
        return 1 if self.status == "resolved" else 0

    def row(self) -> tuple:
        return (
            self.node_id, self.task_id, self.utility, self.status, self.started, self.finished,
            self.agent_s, self.grade_s, self.total_s, self.tokens, self.cost_usd,
            self.trajectory_path, self.log_path, self.detail, " ".join(self.flags),
        )


EVAL_COLUMNS = (
    "node_id, task_id, utility, status, started, finished, agent_s, grade_s, total_s, "
    "tokens, cost_usd, trajectory_path, log_path, detail, flags"
)


@dataclass(frozen=True, slots=True)
class ExpansionRecord:
    """A finished attempt to make a child of `parent_id` (child_id is set only when ok)."""

    parent_id: int
    status: str
    child_id: int | None = None
    reason: str = ""
    cost_usd: float = 0.0
    tokens: int = 0
    started: float | None = None
    finished: float = field(default_factory=time.time)
    lesson: str = ""
    diagnosis: str = ""
    operator: str = ""  # revise | recombine | refine ('' before operators were recorded)
    second_parent_id: int | None = None  # recombine: the other parent

    def __post_init__(self) -> None:
        if self.status not in EXPANSION_STATUSES:
            raise ValueError(f"unknown expansion status {self.status!r}; expected one of {', '.join(EXPANSION_STATUSES)}")

    def row(self, child_id: int | None = None) -> tuple:
        return (
            self.parent_id, self.child_id if child_id is None else child_id, self.status, self.reason,
            self.cost_usd, self.tokens, self.started, self.finished, self.lesson, self.diagnosis,
            self.operator, self.second_parent_id,
        )


EXPANSION_COLUMNS = (
    "parent_id, child_id, status, reason, cost_usd, tokens, started, finished, lesson, diagnosis, "
    "operator, second_parent_id"
)


@dataclass(frozen=True, slots=True)
class AdmissionRecord:
    """The gate's decision on one child of `parent_id` (a ledger row).

    `checks` holds one mapping per check ({name, verdict, reason, details}); `producer`
    says who or what made the child (operator, model, job, lesson, ...). The child's node
    id and commit are filled in by the archive when the child is added.
    """

    parent_id: int
    decision: str  # accepted | rejected
    diff_sha256: str = ""
    child_digest: str = ""
    reason: str = ""
    checks: tuple[Mapping[str, Any], ...] = ()
    producer: Mapping[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.decision not in ("accepted", "rejected"):
            raise ValueError(f"unknown admission decision {self.decision!r}; expected accepted or rejected")

    def row(self, parent_commit: str, child_id: int | None, child_commit: str, expansion_id: int | None) -> tuple:
        return (
            self.time, "admission", self.decision, child_id, self.parent_id, expansion_id, parent_commit,
            child_commit, self.child_digest, self.diff_sha256, self.reason,
            json.dumps(list(self.checks), default=str), json.dumps(dict(self.producer), default=str),
        )


LEDGER_COLUMNS = (
    "time, kind, decision, node_id, parent_id, expansion_id, parent_commit, child_commit, child_digest, "
    "diff_sha256, reason, checks, producer"
)
