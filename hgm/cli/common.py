"""Helpers shared by CLI commands: one-line errors and JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error to stderr and exit with `code`."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    """Print `data` as JSON on stdout (for `--json`)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
