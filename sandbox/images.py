"""Docker image helpers: does an image exist, build one FROM another with the classic builder.

Debian's docker.io engine ships without buildx, but the Engine API's classic builder
(`POST /build`, what the docker SDK's `images.build` calls) works; we send it a context
tar built in memory.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from sandbox.api import SandboxError

ProgressFn = Callable[[str], None]


def docker_client(timeout: int = 60):
    """A docker SDK client from the environment, or SandboxError when no engine answers."""
    import docker

    try:
        client = docker.from_env(timeout=timeout, max_pool_size=32)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no usable engine
        raise SandboxError(f"no Docker engine answers: {exc}") from exc
    return client


def image_exists(tag: str, client=None) -> bool:
    """True when the local engine has an image called `tag`."""
    import docker.errors

    own = client is None
    client = client or docker_client()
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False
    finally:
        if own:
            client.close()


def _context_tar(dockerfile_text: str | None, context_dir: Path | None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        if context_dir is not None:
            for item in sorted(Path(context_dir).iterdir()):
                tar.add(str(item), arcname=item.name)
        if dockerfile_text is not None:
            data = dockerfile_text.encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(data)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_image_from(
    base: str | None,
    dockerfile: str | Path,
    tag: str,
    *,
    client=None,
    progress: ProgressFn | None = None,
    network_mode: str | None = None,
) -> str:
    """Build image `tag` and return its id.

    `dockerfile` is either Dockerfile text or a context directory holding a Dockerfile.
    When `base` is given, the Dockerfile text may use `FROM {base}` literally or
    omit FROM: a first line `FROM <base>` is then added. Images built from the hgm base
    run as uid 1000 (`hgm`); a Dockerfile that installs packages should switch to
    `USER root` and end with `USER 1000:1000`.
    """
    context_dir: Path | None = None
    text: str | None
    if isinstance(dockerfile, Path) or (isinstance(dockerfile, str) and "\n" not in dockerfile and Path(dockerfile).is_dir()):
        context_dir = Path(dockerfile)
        text = None
    else:
        text = str(dockerfile)
        if base is not None:
            text = text.replace("{base}", base)
            first = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")), "")
            if not first.upper().startswith(("FROM", "ARG")):
                text = f"FROM {base}\n{text}"
    own = client is None
    client = client or docker_client()
    try:
        stream = client.api.build(
            fileobj=io.BytesIO(_context_tar(text, context_dir)),
            custom_context=True,
            tag=tag,
            rm=True,
            forcerm=True,
            decode=True,
            network_mode=network_mode,
        )
        image_id = None
        for chunk in stream:
            if "error" in chunk:
                raise SandboxError(f"building {tag} failed: {chunk['error'].strip()}")
            line = (chunk.get("stream") or chunk.get("status") or "").strip()
            if line and progress is not None:
                progress(line)
            aux = chunk.get("aux") or {}
            image_id = aux.get("ID", image_id)
        if image_id is None:
            image_id = client.images.get(tag).id
        return image_id
    except SandboxError:
        raise
    except Exception as exc:  # noqa: BLE001 - docker raises many kinds
        raise SandboxError(f"building {tag} failed: {exc}") from exc
    finally:
        if own:
            client.close()


def image_config(image: str, client) -> dict:
    """The image's config (User, WorkingDir, Env, ...); {} when the image is unknown."""
    try:
        return client.api.inspect_image(image).get("Config") or {}
    except Exception:  # noqa: BLE001
        return {}
