"""The environment an agent process gets: enough to run, nothing secret."""

from __future__ import annotations

import json
import os
from typing import Mapping

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def agent_env(
    gateway: object,
    tags: Mapping[str, object],
    *,
    url: str | None = None,
    path: str | None = None,
    home: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The complete environment for an agent process: PATH, HOME, LANG and the HGM_LLM_* variables.

    Build the child's environment from this alone (`subprocess.run(..., env=agent_env(...))`,
    or the sandbox spec's env), never from `os.environ`: provider keys must not reach agents.
    `url` overrides the gateway's socket path, e.g. with the path where the socket is
    mounted inside a container. `path`/`home` default to this process's PATH and HOME.
    """
    gateway_url = url or getattr(gateway, "url")
    config = getattr(gateway, "config", None)
    env = {
        "PATH": path or os.environ.get("PATH") or DEFAULT_PATH,
        "HOME": home or os.environ.get("HOME") or "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "HGM_LLM_URL": str(gateway_url),
        "HGM_LLM_MODEL": getattr(config, "alias", "hgm"),
        "HGM_LLM_TAGS": json.dumps({k: str(v) for k, v in tags.items()}, sort_keys=True),
    }
    env.update(extra or {})
    return env
