"""Helpers shared by CLI commands: one-line errors and JSON output."""

from __future__ import annotations

import importlib
import json
import sys
from types import ModuleType
from typing import Any, NoReturn

import typer


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error to stderr and exit with `code`."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    """Print `data` as JSON on stdout (for `--json`)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def import_optional(name: str) -> ModuleType | None:
    """Import module `name`, or None when that module itself does not exist.

    An ImportError raised from *inside* an existing module still propagates, so a
    broken command module is an error rather than a silently missing command.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None
