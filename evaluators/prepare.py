"""Obtain the environments of a suite's tasks ahead of a run (`hgm suite prepare`)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from sandbox.api import Backend

from evaluators.suite import Environment, OnEvent, Suite


@dataclass
class Prepared:
    """One task's environment, or why it could not be had."""

    instance_id: str
    environment: Environment | None = None
    error: str = ""
    seconds: float = 0.0

    @property
    def status(self) -> str:
        if self.error:
            return "failed"
        return "fallback" if self.environment and self.environment.how == "fallback" else "ready"

    def to_dict(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "status": self.status, "error": self.error,
                "seconds": round(self.seconds, 2),
                "environment": self.environment.to_dict() if self.environment else None}


def prepare_suite(
    suite: Suite,
    backend: Backend,
    ids: Sequence[str] | None = None,
    *,
    require_image: bool = False,
    workers: int = 1,
    on_event: OnEvent | None = None,
    on_done: Callable[[Prepared], None] | None = None,
) -> list[Prepared]:
    """`ensure_environment` for each selected task; results in task order.

    With `require_image` (SWE-bench suites: the point is their images) a task that
    would fall back to hgm-base is a failure whose error says why its image is missing.
    """
    tasks = suite.select(ids)
    suite.use_backend(backend)

    def one(task: Any) -> Prepared:
        started = time.monotonic()
        try:
            env = suite.ensure_environment(task, backend, on_event)
            error = f"{task.instance_id}: {env.detail}" if require_image and env.how == "fallback" else ""
            done = Prepared(task.instance_id, env, error)
        except Exception as exc:  # noqa: BLE001 - each task's failure is one line of the report
            message = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            prefix = "" if message.startswith(f"{task.instance_id}:") else f"{task.instance_id}: "
            done = Prepared(task.instance_id, error=prefix + message)
        done.seconds = time.monotonic() - started
        if on_done:
            on_done(done)
        return done

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, tasks))


__all__ = ["Prepared", "prepare_suite"]
