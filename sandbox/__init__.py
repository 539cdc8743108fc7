"""Isolated execution of untrusted code: Docker backend, local fallback, base-image builder.

    from sandbox import get_backend, SandboxSpec, Mount
    backend = get_backend("auto")
    with backend.open(SandboxSpec(labels={"hgm.run": run_id, "hgm.purpose": "solve"})) as box:
        box.put("/work/repo", Path("checkout"))
        result = box.exec("cd repo && python -m pytest -q", timeout=300)

The contract lives in `sandbox.api`; backends in `sandbox.docker_backend` and
`sandbox.local_backend` (imported lazily: the docker SDK is not loaded until needed).
"""

from __future__ import annotations

import logging
from typing import Literal

from sandbox.api import (
    BASE_IMAGE,
    DEFAULT_MAX_OUTPUT,
    DEFAULT_WORKDIR,
    Backend,
    ExecResult,
    Limits,
    Mount,
    SandboxError,
    SandboxSpec,
    Session,
)

log = logging.getLogger(__name__)

BackendName = Literal["auto", "docker", "local"]


def docker_unavailable_reason(image: str = BASE_IMAGE) -> str | None:
    """Why the Docker backend cannot be used with `image`, or None when it can."""
    try:
        from sandbox.images import docker_client, image_exists

        client = docker_client(timeout=5)
    except Exception as exc:  # noqa: BLE001 - includes a missing docker SDK
        return f"no Docker engine answers ({str(exc).splitlines()[0][:120]})"
    try:
        if not image_exists(image, client):
            return f"the image {image} does not exist (run `hgm sandbox build-base`)"
    finally:
        client.close()
    return None


def get_backend(name: BackendName = "auto", image: str = BASE_IMAGE) -> Backend:
    """The named backend; "auto" = Docker when an engine answers and `image` exists, else local.

    "auto" logs which backend it chose and why (also kept as `backend.selection_reason`).
    "docker" raises SandboxError when no
    engine answers.
    """
    if name == "docker":
        from sandbox.docker_backend import DockerBackend

        return DockerBackend()
    if name == "local":
        from sandbox.local_backend import LocalBackend

        return LocalBackend()
    if name != "auto":
        raise SandboxError(f"unknown sandbox backend {name!r}; use auto, docker or local")
    reason = docker_unavailable_reason(image)
    chosen: Backend
    if reason is None:
        from sandbox.docker_backend import DockerBackend

        chosen, why = DockerBackend(), f"a Docker engine answers and {image} exists"
        log.info("sandbox backend: docker, because %s", why)
    else:
        from sandbox.local_backend import LocalBackend

        chosen, why = LocalBackend(), reason
        log.warning("sandbox backend: local, because %s", why)
    chosen.selection_reason = why  # type: ignore[attr-defined]
    return chosen


__all__ = [
    "BASE_IMAGE",
    "DEFAULT_MAX_OUTPUT",
    "DEFAULT_WORKDIR",
    "Backend",
    "ExecResult",
    "Limits",
    "Mount",
    "SandboxError",
    "SandboxSpec",
    "Session",
    "docker_unavailable_reason",
    "get_backend",
]
