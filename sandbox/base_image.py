"""Build `hgm-base:latest`, the image every task and agent runs in (Python 3, git, patch).

Two ways, chosen automatically:

* a registry answers within a couple of seconds: `FROM python:3.11-slim` plus git/patch/procps;
* offline (the usual case here): `debootstrap --variant=minbase` of Debian bookworm from the
  mirror apt is configured with, trimmed (no .debs, apt lists, docs, man pages, locales),
  then `docker import`.

Both end with the same setup layer: user `hgm` (uid 1000) owning `/work`, system-wide git
identity and `safe.directory *` so agents can commit, `python` -> `python3`, and
`USER 1000:1000` so sandboxes do not run as root by default.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox.api import BASE_IMAGE, SandboxError
from sandbox.images import build_image_from, docker_client, image_exists

DEBIAN_SUITE = "bookworm"
DEBIAN_FALLBACK_MIRROR = "http://deb.debian.org/debian"
# python3-venv/pip: agents and task images create envs; procps: ps/kill for diagnostics;
# ca-certificates: git/pip over https during image builds.
DEBOOTSTRAP_PACKAGES = (
    "python3",
    "python3-venv",
    "python3-pip",
    "python3-pytest",
    "git",
    "patch",
    "ca-certificates",
    "procps",
)
TRIM_PATHS = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
REGISTRY_BASE = "python:3.11-slim"

SETUP_DOCKERFILE = """\
FROM {base}
USER root
{extra}RUN (getent passwd 1000 >/dev/null || useradd --create-home --uid 1000 --user-group --shell /bin/bash hgm) \\
 && mkdir -p /work && chown 1000:1000 /work \\
 && git config --system safe.directory '*' \\
 && git config --system user.name 'hgm agent' \\
 && git config --system user.email 'agent@hgm.invalid' \\
 && git config --system init.defaultBranch main \\
 && git config --system advice.detachedHead false \\
 && (command -v python >/dev/null || ln -s /usr/bin/python3 /usr/local/bin/python)
ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
WORKDIR /work
USER 1000:1000
LABEL hgm.image="base"
CMD ["sleep", "infinity"]
"""
SLIM_EXTRA = (
    "RUN apt-get update && apt-get install -y --no-install-recommends git patch procps "
    "&& rm -rf /var/lib/apt/lists/* && pip install --no-cache-dir pytest\n"
)
IMPORT_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "WORKDIR /",
    'CMD ["/bin/bash"]',
)

Say = Callable[[str], None]


@dataclass(frozen=True)
class BaseBuild:
    """What `build_base_image` did."""

    tag: str
    image_id: str
    method: str  # "existing" | "registry" | "debootstrap"
    seconds: float


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt uses (deb822 or one-line format), else deb.debian.org."""
    for path in sorted((sources_dir / "sources.list.d").glob("*.sources")):
        for stanza in path.read_text(errors="replace").split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and DEBIAN_SUITE in suites.group(1).split() and "security" not in uris.group(1):
                return uris.group(1)
    legacy = sources_dir / "sources.list"
    if legacy.exists():
        for line in legacy.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and DEBIAN_SUITE in parts[2:4] and "security" not in parts[1]:
                return parts[1]
    return DEBIAN_FALLBACK_MIRROR


def registry_reachable(host: str = "registry-1.docker.io", port: int = 443, timeout: float = 2.0) -> bool:
    """Quick check (DNS included) whether the Docker Hub registry can be reached."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


def _run_streaming(cmd: list[str], say: Say) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.strip()
        if line:
            tail = (tail + [line])[-15:]
            say(line)
    if proc.wait() != 0:
        raise SandboxError(f"{cmd[0]} failed (exit {proc.returncode}):\n" + "\n".join(tail))


def _debootstrap_image(client, tag: str, say_phase: Callable[[str], Say]) -> str:
    if os.geteuid() != 0:
        raise SandboxError("building the base image offline needs root (debootstrap); run as root or pull an image")
    if shutil.which("debootstrap") is None:
        raise SandboxError("debootstrap is not installed; apt-get install debootstrap")
    mirror = debian_mirror()
    rootfs_tag = f"{tag.split(':')[0]}:rootfs"
    with tempfile.TemporaryDirectory(prefix="hgm-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        say = say_phase(f"debootstrap {DEBIAN_SUITE} from {mirror}")
        _run_streaming(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(DEBOOTSTRAP_PACKAGES)}",
                DEBIAN_SUITE,
                str(rootfs),
                mirror,
            ],
            say,
        )
        say = say_phase("trimming the root file system")
        for rel in TRIM_PATHS:
            target = rootfs / rel
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        say = say_phase("packing the root file system")
        archive = Path(tmp) / "rootfs.tar"
        _run_streaming(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(archive), "."], say)
        say = say_phase(f"docker import as {rootfs_tag}")
        client.api.import_image_from_file(
            str(archive),
            repository=rootfs_tag.split(":")[0],
            tag=rootfs_tag.split(":")[1],
            changes=list(IMPORT_CHANGES),
        )
    say = say_phase("adding user hgm (uid 1000), git identity, /work")
    build_image_from(rootfs_tag, SETUP_DOCKERFILE.replace("{extra}", ""), tag, client=client, progress=say)
    try:
        client.images.remove(rootfs_tag, noprune=True)  # untag only; layers are shared
    except Exception:  # noqa: BLE001 - a leftover tag is harmless
        pass
    return client.images.get(tag).id


def _registry_image(client, tag: str, say_phase: Callable[[str], Say]) -> str:
    say = say_phase(f"pulling {REGISTRY_BASE}")
    repo, _, version = REGISTRY_BASE.partition(":")
    for event in client.api.pull(repo, tag=version, stream=True, decode=True):
        status = event.get("status", "")
        if status:
            say(f"{status} {event.get('progress', '')}".strip())
    say = say_phase("adding git, patch, user hgm (uid 1000), /work")
    dockerfile = SETUP_DOCKERFILE.replace("{extra}", SLIM_EXTRA)
    build_image_from(REGISTRY_BASE, dockerfile, tag, client=client, progress=say)
    return client.images.get(tag).id


def build_base_image(
    tag: str = BASE_IMAGE,
    *,
    force: bool = False,
    use_registry: bool | None = None,
    say_phase: Callable[[str], Say] | None = None,
) -> BaseBuild:
    """Build the base image unless it exists (or `force`).

    `use_registry`: None = detect (2 s probe), True/False = force the choice.
    `say_phase(name)` is called at each phase and returns a callback for detail lines.
    """
    started = time.monotonic()
    say_phase = say_phase or (lambda name: (lambda line: None))
    client = docker_client(timeout=600)
    try:
        if not force and image_exists(tag, client):
            return BaseBuild(tag, client.images.get(tag).id, "existing", time.monotonic() - started)
        if use_registry is None:
            say_phase("checking whether an image registry is reachable")
            use_registry = registry_reachable()
        if use_registry:
            try:
                image_id = _registry_image(client, tag, say_phase)
                return BaseBuild(tag, image_id, "registry", time.monotonic() - started)
            except Exception as exc:  # noqa: BLE001 - fall back to the offline build
                say_phase(f"registry build failed ({str(exc)[:120]}); building offline instead")
        image_id = _debootstrap_image(client, tag, say_phase)
        return BaseBuild(tag, image_id, "debootstrap", time.monotonic() - started)
    finally:
        client.close()
