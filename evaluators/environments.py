"""Task environment images with Python packages, built offline from a host-side wheel cache.

Inside a container PyPI is not reachable here (the host's TLS trust store is not in
the image), but the host reaches PyPI. So hgm fills a wheel cache on the host with
`pip wheel` (wheels from PyPI, sdists built into wheels, local paths too), then builds
`FROM <base>` with the docker SDK's classic builder, with NO network, installing only
from the copied wheels (`pip install --no-index --find-links`). Images are tagged by a
hash of their inputs (base image id + requirements), so a second build is a lookup.

Assumption: the host Python has the image's minor version (both 3.11 here); wheels
for another interpreter would not install, and the build says so.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from sandbox.api import BASE_IMAGE, SandboxError

from evaluators.repos import cache_dir

TAG_PREFIX = "hgm-env"
DOCKERFILE = """\
FROM {base}
USER root
COPY wheels /tmp/hgm-wheels
RUN python3 -m pip install --no-index --no-cache-dir --break-system-packages --disable-pip-version-check \\
        --find-links /tmp/hgm-wheels /tmp/hgm-wheels/*.whl \\
    && rm -rf /tmp/hgm-wheels
USER {user}
"""


class EnvironmentBuildError(SandboxError):
    """An environment image cannot be built (wheels unavailable, build failed)."""


def _norm(requirements: Sequence[str]) -> list[str]:
    out = []
    for req in requirements:
        req = req.strip()
        if not req:
            continue
        path = Path(req).expanduser()
        out.append(str(path.resolve()) if path.exists() else req)
    return sorted(set(out))


def _is_build_output(relative: Path) -> bool:
    """Files pip or setuptools write into a project while building it (not inputs)."""
    return any(part in (".git", "__pycache__", "build", "dist") or part.endswith(".egg-info") for part in relative.parts)


class EnvironmentBuilder:
    """Builds (and caches) `hgm-env:<hash>` images: base + wheels of some requirements."""

    def __init__(
        self,
        base_image: str = BASE_IMAGE,
        wheel_cache: Path | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.base_image = base_image
        self.wheel_cache = wheel_cache or cache_dir() / "wheels"
        self.progress = progress

    def _client(self):
        from sandbox.images import docker_client

        return docker_client()

    def tag_for(self, requirements: Sequence[str], client=None) -> str:
        """The image tag for these requirements on the current base image."""
        own = client is None
        client = client or self._client()
        try:
            base_id = client.images.get(self.base_image).id
        except Exception as exc:  # noqa: BLE001
            raise EnvironmentBuildError(f"base image {self.base_image} is not available: {exc}") from exc
        finally:
            if own:
                client.close()
        digest = hashlib.sha256(base_id.encode())
        for req in _norm(requirements):
            digest.update(b"\0" + req.encode())
            path = Path(req)
            # a local wheel, sdist or project directory: its content is an input too
            files = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
            for file in files:
                if file.is_file() and not _is_build_output(file.relative_to(path.parent)):
                    digest.update(str(file.relative_to(path.parent)).encode())
                    digest.update(hashlib.sha256(file.read_bytes()).digest())
        return f"{TAG_PREFIX}:{digest.hexdigest()[:16]}"

    def fill_wheels(self, requirements: Sequence[str], dest: Path) -> list[Path]:
        """`pip wheel` the requirements (and their dependencies) into `dest` on the host."""
        dest.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--quiet",
               "--wheel-dir", str(dest), "--find-links", str(self.wheel_cache), *_norm(requirements)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["pip failed"]
            raise EnvironmentBuildError(f"cannot get wheels for {', '.join(requirements)}: {tail[0]}")
        wheels = sorted(dest.glob("*.whl"))
        self.wheel_cache.mkdir(parents=True, exist_ok=True)
        for wheel in wheels:  # keep them for the next build (and for offline rebuilds)
            if not (self.wheel_cache / wheel.name).exists():
                shutil.copy2(wheel, self.wheel_cache / wheel.name)
        return wheels

    def build(self, requirements: Sequence[str]) -> str:
        """The tag of an image with `requirements` installed; built only when missing."""
        if not _norm(requirements):
            return self.base_image
        from sandbox.images import build_image_from, image_config, image_exists

        client = self._client()
        try:
            tag = self.tag_for(requirements, client)
            if image_exists(tag, client):
                return tag
            user = image_config(self.base_image, client).get("User") or "root"
            with tempfile.TemporaryDirectory(prefix="hgm-env-") as tmp:
                context = Path(tmp)
                self.fill_wheels(requirements, context / "wheels")
                (context / "Dockerfile").write_text(DOCKERFILE.format(base=self.base_image, user=user))
                build_image_from(None, context, tag, client=client, progress=self.progress, network_mode="none")
            return tag
        finally:
            client.close()


__all__ = ["EnvironmentBuilder", "EnvironmentBuildError"]
