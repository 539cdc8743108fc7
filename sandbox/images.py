"""Docker image helpers: exists, build (classic builder), pull with progress, tag, remove, layers.

Debian's docker.io engine ships without buildx, but the Engine API's classic builder
(`POST /build`, what the docker SDK's `images.build` calls) works; we send it a context
tar built in memory.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
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
                if dockerfile_text is None or item.name != "Dockerfile":
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
    context: Path | None = None,
    labels: dict[str, str] | None = None,
) -> str:
    """Build image `tag` and return its id.

    `dockerfile` is either Dockerfile text or a context directory holding a Dockerfile;
    with text, `context` may name a directory whose files are the build context
    (its own Dockerfile, if any, is replaced by the text).
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
        context_dir = context
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
            labels=labels,
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


@dataclass
class PullProgress:
    """Bytes of one pull so far, summed over its layers (total grows as layers are announced)."""

    ref: str
    done: int = 0
    total: int = 0
    status: str = ""


def split_ref(ref: str) -> tuple[str, str]:
    """`repo[:tag]` -> (repo, tag); a port in the registry host is not a tag."""
    if "@" in ref:
        return ref, ""
    head, _, last = ref.rpartition("/")
    if ":" in last:
        name, _, tag = last.partition(":")
        return (f"{head}/{name}" if head else name), tag
    return ref, "latest"


def pull_image(ref: str, *, client=None, progress: Callable[[PullProgress], None] | None = None) -> str:
    """Pull `ref` and return its image id; SandboxError with the engine's one-line reason."""
    own = client is None
    client = client or docker_client(timeout=600)
    repo, tag = split_ref(ref)
    state = PullProgress(ref)
    layers: dict[str, tuple[int, int]] = {}
    try:
        for event in client.api.pull(repo, tag=tag or None, stream=True, decode=True):
            if "error" in event:
                raise SandboxError(f"cannot pull {ref}: {_first_line(event['error'])}")
            detail = event.get("progressDetail") or {}
            if event.get("id") and detail.get("total"):
                layers[event["id"]] = (int(detail.get("current", 0)), int(detail["total"]))
            elif event.get("id") and event.get("status") in ("Pull complete", "Already exists", "Download complete"):
                _, total = layers.get(event["id"], (0, 0))
                layers[event["id"]] = (total, total)
            state.done = sum(c for c, _ in layers.values())
            state.total = sum(t for _, t in layers.values())
            state.status = str(event.get("status") or "")
            if progress is not None:
                progress(state)
        return client.images.get(ref).id
    except SandboxError:
        raise
    except Exception as exc:  # noqa: BLE001 - the SDK raises NotFound, APIError, connection errors
        message = getattr(exc, "explanation", None) or str(exc)
        raise SandboxError(f"cannot pull {ref}: {_first_line(str(message))}") from None
    finally:
        if own:
            client.close()


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0][:300] if lines else "unknown error"


def image_id(ref: str, client) -> str | None:
    """The id of local image `ref`, or None."""
    import docker.errors

    try:
        return client.api.inspect_image(ref)["Id"]
    except docker.errors.ImageNotFound:
        return None


def tag_image(source: str, ref: str, client) -> None:
    """Give local image `source` the extra name `ref`."""
    repo, tag = split_ref(ref)
    client.api.tag(source, repo, tag or None, force=True)


def remove_ref(ref: str, client) -> str:
    """Remove the name `ref` (the image goes when it was its last name and no container uses it).

    Returns "" on success, else the engine's one-line reason (e.g. in use by a container).
    """
    import docker.errors

    try:
        client.api.remove_image(ref)
        return ""
    except docker.errors.ImageNotFound:
        return ""
    except docker.errors.APIError as exc:
        return _first_line(str(exc.explanation or exc))


def layer_sizes(image: str, client) -> list[tuple[str, int]]:
    """(layer key, bytes) of each layer of `image`, oldest first.

    The key hashes the image's history up to that layer, so images built on the same
    parent share the parent's keys: the union over several images is their real disk use.
    """
    history = list(reversed(client.api.history(image)))
    out, key = [], hashlib.sha256()
    for step in history:
        key.update(f"{step.get('Created')}|{step.get('CreatedBy')}|{step.get('Size')}".encode())
        size = int(step.get("Size") or 0)
        if size:
            out.append((key.copy().hexdigest()[:24], size))
    return out
