"""Turn a task image (pulled, local or built) into what hgm's sandboxes run: the testbed layer.

swebench's images run as root with the repository at /testbed and a conda environment
`testbed` that eval scripts enter with `source /opt/miniconda3/bin/activate` and
`conda activate testbed`. hgm's sandboxes run as uid 1000 with no network, so every
task image gets one thin layer on top (`hgm-testbed:<hash of the image id>`, built
offline with the classic builder, recorded in the image cache like the image itself):

- a user with uid 1000 (swebench images already have one, `nonroot`), /work for it,
  /testbed owned by it (so the agent may edit and grading may patch), git trusting it;
- `USER 1000:1000` as the default user.

Then one probe container (per image id, cached on disk) asks the image how swebench
activates its environment: it sources the conda activation as swebench's eval scripts
do and reports what that changes in the environment (PATH, CONDA_PREFIX, ...), which
interpreter runs the agent without it, and whether /testbed holds a git repository.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path
from typing import Callable
from sandbox.api import Backend, SandboxError, SandboxSpec, Session
from sandbox.image_cache import ImageCache, cache_root

from evaluators.repos import GIT_ENV, put_repo
from evaluators.suite import TESTBED, EnvEvent, Environment, OnEvent

LAYER_TAG = "hgm-testbed"
LAYER_VERSION = "1"
LAYER = """\
USER root
RUN (getent passwd 1000 >/dev/null 2>&1 || useradd --create-home --uid 1000 --user-group --shell /bin/sh hgm \\
      || adduser -D -u 1000 hgm) \\
 && mkdir -p /work {testbed} && chown 1000:1000 /work && chown -R 1000:1000 {testbed} \\
 && (git config --system --add safe.directory '*' || true)
USER 1000:1000
"""
CONDA_ROOTS = ("/opt/miniconda3", "/opt/conda")
SPLIT = "@@HGM-SPLIT@@"
# What activation "changes" that is not the environment: shell bookkeeping, our exec id.
NOT_ACTIVATION = {"_", "SHLVL", "PWD", "OLDPWD", "HGM_EXEC_ID"}


def env_name() -> str:
    """swebench's name for the task environment (`testbed`)."""
    from swebench.image_builder.constants import CONTAINER_ENV_NAME

    return CONTAINER_ENV_NAME


def probe_script() -> str:
    """Shell script printing: python path, whether /testbed is a repo, env before/after activation."""
    name = shlex.quote(env_name())
    roots = " ".join(shlex.quote(r) for r in CONDA_ROOTS)
    return f"""
py=$(command -v python3 || command -v python || true)
printf 'python=%s\\n' "$py"
if git -C {TESTBED} rev-parse -q --verify HEAD >/dev/null 2>&1; then echo repo=yes; fi
printf '{SPLIT}'; env -0
for root in {roots}; do
  if [ -f "$root/bin/activate" ] && [ -d "$root/envs/"{name} ] && command -v bash >/dev/null; then
    printf '{SPLIT}'
    bash -c '. "$1/bin/activate" >/dev/null 2>&1 && conda activate "$2" >/dev/null 2>&1 && env -0' hgm "$root" {name}
    break
  fi
done
"""


def _env_block(text: str) -> dict[str, str]:
    out = {}
    for item in text.split("\0"):
        key, sep, value = item.partition("=")
        if sep and key:
            out[key] = value
    return out


def parse_probe(output: str) -> tuple[str | None, bool, dict[str, str]]:
    """(agent python, repo at /testbed, activation env) from the probe's output."""
    parts = output.split(SPLIT)
    head = dict(line.partition("=")[::2] for line in parts[0].splitlines() if "=" in line)
    python = head.get("python") or None
    activation: dict[str, str] = {}
    if len(parts) >= 3:
        before, after = _env_block(parts[1]), _env_block(parts[2])
        activation = {k: v for k, v in after.items() if before.get(k) != v and k not in NOT_ACTIVATION}
    return python, head.get("repo") == "yes", activation


def layer_tag(source_id: str) -> str:
    digest = hashlib.sha256(f"{source_id}|{LAYER_VERSION}|{LAYER}".encode()).hexdigest()[:16]
    return f"{LAYER_TAG}:{digest}"


def ensure_layer(source: str, client, cache: ImageCache, say: OnEvent | None = None, instance_id: str = "") -> str:
    """The testbed layer over image `source` (built once; recorded as built on `source`)."""
    from sandbox.images import build_image_from, image_id

    source_id = image_id(source, client)
    if source_id is None:
        raise SandboxError(f"image {source} is not in the local engine")
    tag = layer_tag(source_id)
    found = image_id(tag, client)
    if found is None:
        if say:
            say(EnvEvent(instance_id, f"adding the uid-1000 testbed layer to {source}"))
        text = f"FROM {source}\n" + LAYER.format(testbed=TESTBED)
        labels = {"hgm.image": "testbed", "hgm.source": source}
        found = build_image_from(None, text, tag, client=client, network_mode="none", labels=labels)
    cache.record(found, tag, "built", source=source_id)
    cache.touch(source_id)
    return tag


def probe(image: str, image_key: str, backend: Backend) -> tuple[str | None, bool, dict[str, str]]:
    """Run the probe once per image id (cached under the hgm cache dir)."""
    path = cache_root() / "image-env" / f"{image_key.replace(':', '-')}.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            return data["python"], data["repo"], data["env"]
        except (OSError, ValueError, KeyError):
            pass
    spec = SandboxSpec(image=image, labels={"hgm.purpose": "probe"})
    with backend.open(spec) as session:
        result = session.exec(probe_script(), timeout=120)
    if result.exit_code != 0:
        raise SandboxError(f"probing {image} failed (exit {result.exit_code}): {result.stderr.strip()[-200:]}")
    python, repo, env = parse_probe(result.stdout)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"python": python, "repo": repo, "env": env}))
    return python, repo, env


def testbed_environment(
    source: str, how: str, detail: str, backend: Backend, client, cache: ImageCache,
    on_event: OnEvent | None = None, instance_id: str = "",
) -> Environment:
    """The Environment of a task whose image `source` is in the local engine."""
    from sandbox.images import image_id

    tag = ensure_layer(source, client, cache, on_event, instance_id)
    python, repo, env = probe(tag, image_id(tag, client) or tag, backend)
    return Environment(tag, how=how, detail=detail, env=env, python=python, repo_in_image=repo)


def place_repo(session: Session, env: Environment, dest: str, snapshot_dir: Callable[[], Path]) -> str:
    """The task's repository in `session`: the image's own /testbed, else a snapshot put at `dest`."""
    if not env.repo_in_image:
        return put_repo(session, snapshot_dir(), dest)
    check = session.exec(f"git -C {TESTBED} rev-parse HEAD", timeout=60, env=GIT_ENV)
    if not check.ok:
        raise SandboxError(f"image {env.image} has no repository at {TESTBED}")
    return TESTBED


def runs_images(backend: Backend | None) -> bool:
    """Whether `backend` starts sandboxes from images (the local backend does not)."""
    flag = getattr(backend, "uses_images", None)
    return bool(flag) if flag is not None else getattr(backend, "name", "") == "docker"


__all__ = ["LAYER", "ensure_layer", "env_name", "layer_tag", "parse_probe", "place_repo", "probe", "probe_script",
           "runs_images", "testbed_environment"]
