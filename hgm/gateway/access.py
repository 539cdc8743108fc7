"""How a process reaches the gateway: one description, in sandbox terms.

`ModelAccess` is the environment and the mounts an agent needs: the socket's directory
mounted read-only at `SOCKET_MOUNT`, `HGM_LLM_URL` naming the socket there, the model
alias and the call tags. A sandbox backend maps it (Docker bind-mounts the directory; the
local backend resolves the mount target to the host directory); a process on this host
uses `host_env()`. Provider keys never appear in it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Mapping

from sandbox.api import Mount

SOCKET_MOUNT = "/hgm-gateway"
_TEXT_ENV = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}


@dataclass(frozen=True)
class ModelAccess:
    """What an agent process gets to reach the model: environment plus mounts."""

    env: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()

    def host_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for a process on this host: mount targets replaced by their sources.

        `base` defaults to PATH and HOME of this process (never the whole environment:
        provider keys must not reach agents).
        """
        env = dict(base) if base is not None else {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
        }
        for key, value in self.env.items():
            env[key] = self._on_host(value)
        return env

    def _on_host(self, value: str) -> str:
        for mount in self.mounts:
            target = PurePosixPath(mount.target)
            path = PurePosixPath(value)
            if path == target or target in path.parents:
                return str(PurePosixPath(mount.source) / path.relative_to(target))
        return value


def model_access(socket_path: str, alias: str, tags: Mapping[str, object]) -> ModelAccess:
    """The access for a gateway listening on unix socket `socket_path`, calls tagged `tags`."""
    socket = PurePosixPath(socket_path)
    env = {
        **_TEXT_ENV,
        "HGM_LLM_URL": str(PurePosixPath(SOCKET_MOUNT) / socket.name),
        "HGM_LLM_MODEL": alias,
        "HGM_LLM_TAGS": json.dumps({k: str(v) for k, v in tags.items()}, sort_keys=True),
    }
    return ModelAccess(env=env, mounts=(Mount(str(socket.parent), SOCKET_MOUNT, read_only=True),))
