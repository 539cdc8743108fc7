"""Connecting to a Ray cluster and describing it (for `hgm run --executor ray` and `hgm doctor`).

Ray is imported here, inside functions, and only when the Ray executor is configured:
no other command loads it.

Addresses: None starts a private one-node cluster on this machine, kept on the loopback
interface; "auto" joins the cluster that `ray start` made this machine part of;
HOST:PORT names a cluster's head (this machine must be one of its nodes).
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
from dataclasses import asdict, dataclass
from typing import Any

NAMESPACE = "hgm"
PROBE_TIMEOUT_S = 60.0
# Ray turns 127.0.0.1 into the machine's external address unless "cluster mode" is off;
# a private cluster needs no other machine, so it stays on loopback (and unreachable).
_LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class ClusterError(RuntimeError):
    """The cluster cannot be used; the message is one line naming what to fix."""


def ray_version() -> str | None:
    """The installed Ray's version, or None when the `ray` extra is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ray")
    except PackageNotFoundError:
        return None


def connect(address: str | None, *, slot_resource: str, local_slots: int) -> tuple[str, bool]:
    """`ray.init` for this process: (where it is connected, whether this call connected it).

    A private cluster (`address` None) offers `local_slots` of `slot_resource`. A process
    that is connected already (a benchmark, a test) stays on its cluster.
    """
    if ray_version() is None:
        raise ClusterError("the Ray executor needs Ray: pip install 'hgm[ray]' (on this machine and every node)")
    if address not in (None, "auto"):
        _reachable(address)  # Ray itself waits minutes for a head that is not there
    if address is None and "ray" not in sys.modules:
        os.environ.setdefault(_LOOPBACK_ONLY, "0")
    import ray

    if ray.is_initialized():
        return "the Ray cluster this process is connected to", False
    common: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address is None:
            ray.init(num_cpus=max(1, os.cpu_count() or 1), resources={slot_resource: float(local_slots)},
                     include_dashboard=False, _node_ip_address="127.0.0.1", **common)
            return f"a private Ray cluster on this machine ({local_slots} {slot_resource})", True
        ray.init(address=address, **common)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, ValueError, RuntimeError from Ray
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:300]
        where = "start a private Ray cluster" if address is None else f"connect to the Ray cluster at {address}"
        raise ClusterError(f"cannot {where}: {first} (is `ray start` running on this machine?)") from None
    return f"the Ray cluster at {address}", True


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--ray-address {address!r} is not auto or HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ClusterError(f"no Ray head answers at {address} ({exc.strerror or exc}); start one with "
                           "`ray start --head` or pass its address") from None


def disconnect() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    address: str
    alive: bool
    slots: float
    cpus: float
    head: bool


def nodes(slot_resource: str) -> list[NodeInfo]:
    """Every node the cluster knows (connected process only)."""
    import ray

    out = []
    for node in ray.nodes():
        resources = node.get("Resources") or {}
        out.append(NodeInfo(
            node_id=node["NodeID"], address=node.get("NodeManagerAddress", "?"), alive=bool(node.get("Alive")),
            slots=float(resources.get(slot_resource, 0.0)), cpus=float(resources.get("CPU", 0.0)),
            head="node:__internal_head__" in resources,
        ))
    return out


def slot_nodes(slot_resource: str) -> list[NodeInfo]:
    """The alive nodes that offer at least one slot."""
    return [n for n in nodes(slot_resource) if n.alive and n.slots >= 1]


def total_slots(slot_resource: str) -> int:
    return int(sum(n.slots for n in slot_nodes(slot_resource)))


def slots_fix(slot_resource: str) -> str:
    return f"on each Docker host run `ray start --address HEAD:PORT --resources '{{\"{slot_resource}\": 4}}'`"


def no_slots_message(slot_resource: str, where: str) -> str:
    return f"no node of {where} offers the {slot_resource} resource; {slots_fix(slot_resource)}"


def node_facts() -> dict[str, Any]:
    """What this node runs (called on each node by `probe`): versions, Docker, base image."""
    from importlib.metadata import PackageNotFoundError, version

    facts: dict[str, Any] = {"host": socket.gethostname(), "python": platform.python_version(), "ray": ray_version()}
    try:
        facts["hgm"] = version("hgm")
    except PackageNotFoundError:
        facts["hgm"] = None
    try:
        from sandbox.api import BASE_IMAGE
        from sandbox.images import docker_client, image_exists

        client = docker_client(timeout=5)
        try:
            facts["docker"] = client.version().get("Version", "?")
            facts["base_image"] = image_exists(BASE_IMAGE, client)
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - no engine on this node
        facts["docker"] = None
        facts["docker_problem"] = (str(exc).splitlines() or [exc.__class__.__name__])[0][:160]
        facts["base_image"] = False
    return facts


def probe(slot_resource: str, timeout_s: float = PROBE_TIMEOUT_S) -> list[dict[str, Any]]:
    """One row per alive node: its resources and `node_facts()` measured there."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(node_facts)
    alive = [n for n in nodes(slot_resource) if n.alive]
    refs = [remote.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False))
            .remote() for n in alive]
    rows = []
    for node, ref in zip(alive, refs):
        row = asdict(node)
        try:
            row.update(ray.get(ref, timeout=timeout_s))
        except Exception as exc:  # noqa: BLE001 - a node that does not answer is a row with a problem
            ray.cancel(ref, force=True)
            row["problem"] = f"did not answer: {exc.__class__.__name__}"
        rows.append(row)
    return rows
