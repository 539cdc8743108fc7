"""What grading a patch can end in, and the record of one grading.

Outcomes are distinct, not just 0/1. Every outcome except `error_infra` and
`contaminated` is a measurement of the agent and scores utility 1 (resolved) or 0 (the
rest). `contaminated`: the task's hidden-test canary showed up in what the agent
produced, so the result cannot be trusted either way (see `evaluators.canary`).
Deliberate choice: a test run that times out is a measurement (utility 0). The
grading sandbox starts pristine and the test command runs under a generous hard
deadline, so a hang is the patch's doing (an infinite loop, a deadlock), and
retrying it would only burn the budget again. An infrastructure error (the
sandbox or the environment broke) is never scored: the grader retries it and
then reports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Outcome(str, Enum):
    RESOLVED = "resolved"
    UNRESOLVED = "unresolved"
    EMPTY_PATCH = "empty_patch"
    PATCH_FAILED = "patch_failed"
    TIMEOUT = "timeout"
    ERROR_INFRA = "error_infra"
    CONTAMINATED = "contaminated"

    @property
    def is_measurement(self) -> bool:
        """True when this outcome says something about the agent (may be scored)."""
        return self not in (Outcome.ERROR_INFRA, Outcome.CONTAMINATED)

    @property
    def utility(self) -> float | None:
        """1.0 resolved, 0.0 any other measurement, None for infrastructure errors and contamination."""
        if not self.is_measurement:
            return None
        return 1.0 if self is Outcome.RESOLVED else 0.0


@dataclass
class GradeResult:
    """One grading: outcome, swebench's report, the test log, and how long it took."""

    instance_id: str
    outcome: Outcome
    report: dict[str, Any] = field(default_factory=dict)
    log: str = ""
    duration: float = 0.0
    detail: str = ""  # one line: why (patch apply error, infra error, ...)
    flags: tuple[str, ...] = ()  # facts about the grading, e.g. "machinery:strip" (see evaluators.machinery)

    @property
    def resolved(self) -> bool:
        return self.outcome is Outcome.RESOLVED

    def to_dict(self, with_log: bool = False) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        if not with_log:
            data.pop("log")
        return data


__all__ = ["GradeResult", "Outcome"]
