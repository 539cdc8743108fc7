"""The environment an agent process on this host gets: enough to run, nothing secret."""

from __future__ import annotations

import os
from typing import Mapping


def agent_env(
    gateway: object,
    tags: Mapping[str, object],
    *,
    home: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The complete environment for an agent process run directly on this host.

    PATH and HOME (this process's, or `home`), the text settings and the HGM_LLM_*
    variables of `gateway.access(tags)` with the socket's host path. Build the child's
    environment from this alone, never from `os.environ`: provider keys must not reach
    agents. Sandboxed agents get `gateway.access(tags)` itself (the backend maps it).
    """
    base = {"PATH": os.environ.get("PATH") or "/usr/bin:/bin", "HOME": home or os.environ.get("HOME") or "/tmp"}
    env = gateway.access(tags).host_env(base)  # type: ignore[attr-defined]
    env.update(extra or {})
    return env
