"""Suite validation: for every task the gold patch resolves and the empty patch does not."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from sandbox.api import Backend

from evaluators.grading import DEFAULT_TEST_TIMEOUT, grade
from evaluators.outcomes import GradeResult, Outcome
from evaluators.suite import Environment, OnEvent, Suite
from evaluators.task import Task


@dataclass
class TaskCheck:
    """The validation of one task."""

    instance_id: str
    gold: GradeResult | None = None
    empty: GradeResult | None = None
    skipped: str | None = None
    environment: Environment | None = None
    environment_error: str = ""

    @property
    def ok(self) -> bool:
        if self.skipped is not None:
            return True
        return bool(self.gold and self.gold.resolved and self.empty and self.empty.outcome is Outcome.UNRESOLVED)

    @property
    def problem(self) -> str:
        """One line saying what is wrong ('' when valid)."""
        if self.ok:
            return ""
        parts = [f"environment: {self.environment_error}"] if self.environment_error else []
        if self.gold is None or not self.gold.resolved:
            got = self.gold.outcome.value if self.gold else "not run"
            parts.append(f"gold patch: {got}{' (' + self.gold.detail + ')' if self.gold and self.gold.detail else ''}")
        if self.empty is None or self.empty.outcome is not Outcome.UNRESOLVED:
            got = self.empty.outcome.value if self.empty else "not run"
            parts.append(f"empty patch: {got} (expected unresolved)")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "ok": self.ok,
            "skipped": self.skipped,
            "problem": self.problem,
            "environment": self.environment.to_dict() if self.environment else None,
            "gold": self.gold.to_dict() if self.gold else None,
            "empty": self.empty.to_dict() if self.empty else None,
        }


def validate_task(
    suite: Suite, task: Task, backend: Backend, timeout: float = DEFAULT_TEST_TIMEOUT, on_event: OnEvent | None = None,
) -> TaskCheck:
    """Obtain the task's environment, then grade the gold patch and the empty patch (both run)."""
    reason = suite.skip_reason(task)
    if reason:
        return TaskCheck(task.instance_id, skipped=reason)
    try:
        environment = suite.ensure_environment(task, backend, on_event)
    except Exception as exc:  # noqa: BLE001 - nothing can provide the task: a finding, not a crash
        return TaskCheck(task.instance_id, environment_error=str(exc).splitlines()[0] if str(exc) else repr(exc))
    # the gold patch is graded as written: a task is valid only if its own fix resolves it
    gold = grade(suite.gold_patch(task), task, suite, backend, timeout=timeout, test_machinery="allow")
    empty = grade("", task, suite, backend, timeout=timeout, run_empty=True)
    return TaskCheck(task.instance_id, gold=gold, empty=empty, environment=environment)


def validate_suite(
    suite: Suite,
    backend: Backend,
    ids: Sequence[str] | None = None,
    workers: int = 1,
    timeout: float = DEFAULT_TEST_TIMEOUT,
    on_done: Callable[[TaskCheck], None] | None = None,
    on_event: OnEvent | None = None,
) -> list[TaskCheck]:
    """Validate the selected tasks, `workers` at a time; results in task order."""
    tasks = suite.select(ids)
    suite.use_backend(backend)

    def run(task: Task) -> TaskCheck:
        check = validate_task(suite, task, backend, timeout, on_event)
        if on_done:
            on_done(check)
        return check

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(run, tasks))


__all__ = ["TaskCheck", "validate_suite", "validate_task"]
