"""`hgm --help` lists commands in the order a user meets them; no parameter shows type noise."""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from hgm.cli import build_app

TYPE_NOISE = re.compile(r"<(bool|str|int|float|path|int range|float range|list\[[a-z]+\])>")


def _all_commands() -> list[list[str]]:
    group = typer.main.get_command(build_app())
    paths = []
    for name, command in group.commands.items():
        paths.append([name])
        paths.extend([name, sub] for sub in getattr(command, "commands", {}))
    return paths


def test_commands_are_listed_in_the_order_a_user_meets_them() -> None:
    out = CliRunner().invoke(build_app(), ["--help"], terminal_width=100).output
    listed = re.findall(r"^│ ([a-z]+) ", out, flags=re.MULTILINE)
    first = [name for name in ("run", "resume", "show", "best", "export", "eval") if name in listed]
    assert listed[: len(first)] == first, listed
    assert listed.index("simulate") > listed.index("eval") and listed.index("doctor") > listed.index("export")


def test_no_help_page_shows_type_noise() -> None:
    runner = CliRunner()
    pages = _all_commands()
    assert len(pages) > 10
    for path in [[], *pages]:
        out = runner.invoke(build_app(), [*path, "--help"], terminal_width=120).output
        assert "Usage:" in out, (path, out)
        assert not TYPE_NOISE.search(out), (path, TYPE_NOISE.search(out).group(0))
    export = runner.invoke(build_app(), ["export", "--help"], terminal_width=120).output
    assert re.search(r"--to\s+PATH", export) and re.search(r"--node\s+N\b", export)
