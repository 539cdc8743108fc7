"""`hgm sandbox build-base`, `hgm sandbox gc` and `hgm sandbox prune`."""

from __future__ import annotations

import typer

from hgm.cli.common import fail, print_json


def register(app: typer.Typer) -> None:
    """Add the `sandbox` sub-app to `app`."""
    sub = typer.Typer(help="Sandboxes: build the base image, remove leftover containers, bound task-image disk use.",
                      no_args_is_help=True)

    @sub.command("build-base")
    def build_base(
        force: bool = typer.Option(False, "--force", help="Rebuild even when the image exists."),
        offline: bool = typer.Option(False, "--offline", help="Skip the registry probe; always debootstrap."),
        tag: str = typer.Option("hgm-base:latest", help="Tag of the image to build."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Build the base image (Python 3, git, patch; user hgm uid 1000). Cached when present."""
        import time

        from rich.console import Console

        from sandbox.api import SandboxError
        from sandbox.base_image import build_base_image

        console = Console(stderr=True)
        started = time.monotonic()
        phase_started = [started]

        with console.status("starting", spinner="dots") as status:

            def say_phase(name: str):
                now = time.monotonic()
                console.log(f"[bold]{name}[/bold]  (+{now - started:.0f} s)")
                phase_started[0] = now

                def say(line: str) -> None:
                    elapsed = time.monotonic() - phase_started[0]
                    status.update(f"{name} [{elapsed:.0f} s]: [dim]{line[:90]}[/dim]")

                status.update(name)
                return say

            try:
                result = build_base_image(tag, force=force, use_registry=False if offline else None, say_phase=say_phase)
            except SandboxError as exc:
                fail(str(exc).splitlines()[0] if str(exc) else "building the base image failed")
        if json_out:
            print_json(result.__dict__)
        elif result.method == "existing":
            typer.echo(f"{tag} already exists ({result.image_id[:19]}); use --force to rebuild")
        else:
            typer.echo(f"built {tag} ({result.image_id[:19]}) via {result.method} in {result.seconds:.0f} s")

    @sub.command("gc")
    def gc(
        run: str = typer.Option(None, "--run", help="Only containers of this run id."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Remove leftover hgm sandbox containers (label hgm=1). Without --run this includes
        the sandboxes of runs that are still going."""
        from sandbox.api import SandboxError
        from sandbox.docker_backend import remove_leftovers

        try:
            removed = remove_leftovers(run_id=run)
        except SandboxError as exc:
            fail(f"{exc}; start dockerd or check DOCKER_HOST")
        if json_out:
            print_json({"removed": removed})
        else:
            scope = f" of run {run}" if run else ""
            typer.echo(f"removed {len(removed)} sandbox container(s){scope}")

    @sub.command("prune")
    def prune(
        max_gb: float = typer.Option(None, "--max-gb", min=0, help="Cap in GiB (default: $HGM_IMAGES_MAX_GB, else 50)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be removed."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Remove the least recently used task images hgm pulled or built until they fit the cap.

        Only images recorded in hgm's image cache (~/.cache/hgm/images.json) are candidates; images you pulled or built yourself, and images a container still uses, stay."""
        from rich.console import Console
        from rich.table import Table

        from sandbox.api import SandboxError
        from sandbox.image_cache import GB, ImageCache, default_max_bytes
        from sandbox.images import docker_client

        try:
            cap = int(max_gb * GB) if max_gb is not None else default_max_bytes()
            client = docker_client()
        except SandboxError as exc:
            fail(f"{exc}; start dockerd or check DOCKER_HOST")
        try:
            report = ImageCache().prune(client, cap, dry_run=dry_run)
        finally:
            client.close()
        if json_out:
            print_json({"dry_run": dry_run, **report.to_dict()})
            return
        verb = "would remove" if dry_run else "removed"
        table = Table(title=f"hgm task images: {report.before / GB:.2f} GiB -> {report.after / GB:.2f} GiB "
                            f"(cap {cap / GB:.2f} GiB)")
        for column in ("images", "GiB", "last used", "result"):
            table.add_column(column)
        import time

        for group in report.groups:
            used = time.strftime("%Y-%m-%d %H:%M", time.localtime(group.last_used)) if group.last_used else "-"
            result = f"[red]{verb}[/]" if group.removed else f"kept: {group.kept_because}"
            table.add_row("\n".join(group.refs), f"{group.size / GB:.2f}", used, result)
        Console().print(table)

    app.add_typer(sub, name="sandbox")
