"""The task model: one SWE-bench instance, validated with errors that name the bad field."""

from __future__ import annotations

import json
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator


class TaskError(ValueError):
    """A task file or instance is malformed; the message is one line naming the field."""


class Task(BaseModel):
    """A SWE-bench instance. Unknown keys are kept (`extra`), known ones are checked."""

    model_config = ConfigDict(extra="allow", frozen=True)

    instance_id: str
    repo: str
    base_commit: str
    problem_statement: str
    patch: str = ""
    test_patch: str = ""
    FAIL_TO_PASS: list[str]
    PASS_TO_PASS: list[str] = []
    version: str = ""
    environment_setup_commit: str = ""
    hints_text: str = ""
    created_at: str = ""
    # swebench 5 columns: how the instance is graded
    eval_script: str = ""
    log_parser: str = "parse_log_pytest"
    eval_type: str = "pass_and_fail"
    image: str = ""

    @field_validator("instance_id", "repo", "problem_statement")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        # SWE-bench's Hugging Face datasets store these lists as JSON strings
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"is a string that is not a JSON list ({exc.msg})") from None
        return value

    @field_validator("version", "base_commit", "environment_setup_commit", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        # YAML turns `version: 1.0` into a float; the schema says string
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return value

    def instance(self) -> dict[str, Any]:
        """The task as a plain SWE-bench instance dict (what swebench's functions take)."""
        return self.model_dump()


def _describe(error: ValidationError, where: str) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(task)"
    kind = first["type"]
    if kind == "missing":
        problem = f"field {field!r} is missing"
    else:
        problem = f"field {field!r} {first['msg'].removeprefix('Value error, ')}"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{where}: {problem}{suffix}"


def parse_task(data: Mapping[str, Any] | Any, where: str = "task") -> Task:
    """Validate one instance; raise `TaskError` whose message names the bad field."""
    if not isinstance(data, Mapping):
        raise TaskError(f"{where}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return Task.model_validate(dict(data))
    except ValidationError as exc:
        raise TaskError(_describe(exc, where)) from None


__all__ = ["Task", "TaskError", "parse_task"]
