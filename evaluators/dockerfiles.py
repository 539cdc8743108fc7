"""Build a task's own Dockerfile (swebench's task-repo layout) with the classic builder.

As swebench does (`swebench.task.repo.task_paths`), the build context is the task's
directory, so a Dockerfile may `COPY repo.bundle ...` from it. hgm builds with the
Engine API's classic builder (Debian's engine has no buildx), only when every base image
(`FROM`) is in the local engine or can be pulled, and tags the result by a hash of the
Dockerfile, the context's files and the base images' ids (`hgm-task:<hash>`), so an
unchanged task is built once. Where a task cannot be built, `bundle_sources` finds the
repository where the Dockerfile takes it from (a git bundle in the build context).
"""

from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path

from sandbox.api import SandboxError
from sandbox.image_cache import ImageCache

from evaluators.suite import EnvEvent, OnEvent

TASK_TAG = "hgm-task"
BUNDLE_HEADERS = (b"# v2 git bundle", b"# v3 git bundle")
_ARG = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}?")


class BaseUnavailable(SandboxError):
    """A Dockerfile's base image is neither local nor pullable (the task falls back)."""


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\r?\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def base_images(text: str) -> list[str]:
    """The images a Dockerfile starts FROM (ARG defaults substituted; stages and scratch left out)."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    bases: list[str] = []
    for word, rest in _instructions(text):
        if word == "ARG" and not bases:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
        elif word == "FROM":
            parts = [p for p in rest.split() if not p.startswith("--")]
            if not parts:
                continue
            image = _ARG.sub(lambda m: args.get(m.group(1)) or m.group(2) or "", parts[0])
            if len(parts) >= 3 and parts[1].upper() == "AS":
                stages.add(parts[2].lower())
            if image.lower() not in stages and image != "scratch" and image not in bases:
                bases.append(image)
    return bases


def bundle_sources(task_dir: Path, text: str) -> list[Path]:
    """Git bundles (or repositories) in the build context that the Dockerfile COPYs or ADDs."""
    found: list[Path] = []
    for word, rest in _instructions(text):
        if word not in ("COPY", "ADD"):
            continue
        if rest.startswith("["):
            import json

            try:
                parts = [str(p) for p in json.loads(rest)]
            except ValueError:
                continue
        else:
            parts = shlex.split(rest)
        if any(p.startswith("--from") for p in parts):
            continue
        sources = [p for p in parts if not p.startswith("--")][:-1]
        for source in sources:
            path = (task_dir / source).resolve()
            if task_dir.resolve() not in (path, *path.parents) or path in found:
                continue
            if path.is_file() and path.read_bytes()[:16].startswith(BUNDLE_HEADERS):
                found.append(path)
            elif (path / ".git").exists() or (path / "HEAD").is_file() and (path / "objects").is_dir():
                found.append(path)
    return found


def context_digest(task_dir: Path, text: str, base_ids: list[str]) -> str:
    """Hash of what the build depends on: Dockerfile text, base image ids, every context file."""
    digest = hashlib.sha256(text.encode())
    for base_id in base_ids:
        digest.update(b"\0" + base_id.encode())
    for path in sorted(task_dir.rglob("*")):
        if path.is_file() and path.name != "Dockerfile":
            digest.update(b"\0" + str(path.relative_to(task_dir)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def ensure_base(ref: str, client, cache: ImageCache, say: OnEvent | None = None, instance_id: str = "") -> str:
    """Id of base image `ref`: local, else pulled (and recorded); BaseUnavailable otherwise."""
    from sandbox.images import image_id, pull_image

    found = image_id(ref, client)
    if found:
        return found
    if say:
        say(EnvEvent(instance_id, f"pulling base image {ref}"))
    try:
        found = pull_image(ref, client=client)
    except SandboxError as exc:
        raise BaseUnavailable(f"base image {ref} is not here and {str(exc).removeprefix(f'cannot pull {ref}: ')}") from None
    cache.record(found, ref, "pulled")
    return found


def build_task_image(
    task_dir: Path, client, cache: ImageCache, say: OnEvent | None = None, tag: str | None = None,
) -> str:
    """Build `task_dir/Dockerfile` with `task_dir` as context; return its tag (cached by content)."""
    from sandbox.images import build_image_from, image_id

    text = (task_dir / "Dockerfile").read_text()
    bases = base_images(text)
    ids = [ensure_base(b, client, cache, say, task_dir.name) for b in bases]
    tag = tag or f"{TASK_TAG}:{context_digest(task_dir, text, ids)}"
    found = image_id(tag, client)
    if found is None:
        if say:
            say(EnvEvent(task_dir.name, f"building {task_dir.name}/Dockerfile as {tag}"))
        labels = {"hgm.image": "task", "hgm.task": task_dir.name}
        found = build_image_from(None, text, tag, client=client, context=task_dir, labels=labels)
    cache.record(found, tag, "built")
    return tag


__all__ = ["BaseUnavailable", "base_images", "build_task_image", "bundle_sources", "context_digest", "ensure_base"]
