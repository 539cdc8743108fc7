"""The `hgm` command line.

Each command lives in its own module under `hgm.cli` and exposes `register(app)`.
Modules import only typer at load time; heavy libraries (litellm, swebench, docker,
textual) are imported inside the command functions so `hgm --help` stays fast.
"""

from __future__ import annotations

import typer

from hgm.cli.common import HelpGroup, import_optional

COMMAND_MODULES = (
    "hgm.cli.runs_cmd",
    "hgm.cli.doctor",
    "hgm.cli.sandbox_cmd",
    "hgm.cli.gateway_cmd",
    "hgm.cli.suite_cmd",
    "hgm.cli.eval_cmd",
    "hgm.cli.run_cmd",
    "hgm.cli.simulate_cmd",
    "hgm.cli.tui_cmd",
    "hgm.cli.vet_cmd",
    "hgm.cli.memory_cmd",
)


def build_app() -> typer.Typer:
    """Create the CLI application with every command module that is present."""
    app = typer.Typer(
        name="hgm",
        cls=HelpGroup,
        help="Evolve a coding agent by letting it rewrite its own code (Huxley-Gödel Machine).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in COMMAND_MODULES:
        module = import_optional(name)
        if module is not None:
            module.register(app)
    return app


def main() -> None:
    """Entry point of the `hgm` console script."""
    build_app()()
