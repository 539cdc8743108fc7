"""Helpers shared by CLI commands: one-line errors, JSON output, optional imports, help layout."""

from __future__ import annotations

import importlib
import json
import sys
from types import ModuleType
from typing import Any, NoReturn

import typer
import typer.core


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


# The order a user meets the commands in; others follow alphabetically.
COMMAND_ORDER = ("run", "resume", "show", "best", "export", "eval", "tui", "runs", "vet", "retire", "memory",
                 "suite", "sandbox", "doctor", "gateway", "simulate")
_PLACEHOLDERS = {"str": "TEXT", "int": "N", "float": "NUM", "path": "PATH"}


class HelpGroup(typer.core.TyperGroup):
    """The root command group: commands listed in `COMMAND_ORDER`, options without type noise.

    Typer prints a `<bool>`/`<str>`/`<int>` column for every parameter; flags need none, and a
    short upper-case placeholder (PATH, N, TEXT) reads better for the rest.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            plain_help(command)
        return command

    def get_help_option(self, ctx: Any) -> Any:
        return _flag_without_type(super().get_help_option(ctx))


def plain_help(command: Any) -> None:
    """Give every parameter of `command` (and of its subcommands) a plain placeholder."""
    for param in command.params:
        if isinstance(param, typer.core.TyperArgument):
            param.display_type_rich = lambda ctx: None  # the name says it; no type column
        if param.metavar is not None:
            continue
        if getattr(param, "is_flag", False):
            param.metavar = ""
        elif isinstance(param, typer.core.TyperArgument):
            param.metavar = (param.name or "ARG").upper()
        else:
            param.metavar = placeholder(param.display_type(None))
    original = command.get_help_option
    command.get_help_option = lambda ctx: _flag_without_type(original(ctx))
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)


def placeholder(type_label: str) -> str:
    """`<int range>` -> N, `<list[str]>` -> TEXT..., `<path>` -> PATH."""
    label = type_label.strip("<>").removesuffix(" range")
    if label.startswith("list[") and label.endswith("]"):
        return placeholder(label[5:-1]) + "..."
    return _PLACEHOLDERS.get(label, label.upper())


def _flag_without_type(option: Any) -> Any:
    if option is not None:
        option.metavar = ""
    return option
