"""Which task images hgm itself pulled or built, and a disk cap over them (LRU removal).

hgm records every image it pulls or builds for a task in a small state file,
`<cache>/images.json` (`$HGM_CACHE_DIR`, else `~/.cache/hgm`), keyed by image id with
the names hgm gave it and when it was last used. Why a file and not a label: a pulled
image keeps the labels its publisher gave it, and a label can only be added by building a
new image, so the engine alone cannot tell "hgm pulled this" from "the user pulled this".
The id guards the other way round: a name that now points at another image (the user
pulled or built over it) is no longer ours and is never removed.

`prune(max_bytes)` removes least-recently-used groups (an image plus the images hgm built
on top of it) until the union of the recorded images' layers fits; images outside the file,
images still used by a container, and pinned images stay.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from sandbox.api import SandboxError

DEFAULT_MAX_GB = 50.0
MAX_GB_VAR = "HGM_IMAGES_MAX_GB"
GB = 1024**3


def cache_root() -> Path:
    """Where hgm keeps derived data: `$HGM_CACHE_DIR`, else `~/.cache/hgm`."""
    return Path(os.environ.get("HGM_CACHE_DIR") or Path.home() / ".cache" / "hgm")


def default_max_bytes() -> int:
    """The disk cap: `$HGM_IMAGES_MAX_GB` (GiB), else 50 GiB."""
    raw = os.environ.get(MAX_GB_VAR, "").strip()
    try:
        gb = float(raw) if raw else DEFAULT_MAX_GB
    except ValueError:
        raise SandboxError(f"{MAX_GB_VAR}={raw!r} is not a number of GiB") from None
    if gb < 0:
        raise SandboxError(f"{MAX_GB_VAR} must not be negative")
    return int(gb * GB)


@dataclass
class Removal:
    """One group considered by a prune."""

    refs: list[str]
    size: int  # bytes its layers alone add to the union
    last_used: float
    removed: bool = False
    kept_because: str = ""


@dataclass
class PruneReport:
    """What a prune did (or would do, with `dry_run`)."""

    max_bytes: int
    before: int
    after: int
    groups: list[Removal] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_bytes": self.max_bytes, "before_bytes": self.before, "after_bytes": self.after,
            "groups": [g.__dict__ for g in self.groups],
        }


class ImageCache:
    """The state file of hgm's own task images; every method takes the file lock."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else cache_root() / "images.json"
        self.added = 0  # images this object recorded for the first time: only then can a prune free anything new

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = json.loads(self.path.read_text()) if self.path.is_file() else {}
            except (OSError, json.JSONDecodeError):
                data = {}  # a damaged state file forgets; it never makes us remove anything
            data.setdefault("images", {})
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
                os.replace(tmp, self.path)

    def record(self, image_id: str, ref: str, kind: str, source: str | None = None) -> None:
        """Note that hgm pulled (`kind="pulled"`) or built (`"built"`) `image_id` as `ref`."""
        now = time.time()
        with self._locked() as data:
            if image_id not in data["images"]:
                self.added += 1
            entry = data["images"].setdefault(image_id, {"refs": [], "kind": kind, "added": now})
            if ref not in entry["refs"]:
                entry["refs"].append(ref)
            if source:
                entry["source"] = source
            entry["last_used"] = now

    def touch(self, image_id: str) -> None:
        """Mark `image_id` (if it is one of ours) as used now."""
        with self._locked() as data:
            if image_id in data["images"]:
                data["images"][image_id]["last_used"] = time.time()

    def entries(self) -> dict[str, dict[str, Any]]:
        with self._locked() as data:
            return json.loads(json.dumps(data["images"]))

    def _groups(self, images: dict[str, dict[str, Any]]) -> list[list[str]]:
        """Ids grouped as (root, images built on it...), roots being images not built on one of ours."""
        children: dict[str, list[str]] = {}
        roots = []
        for image_id, entry in images.items():
            source = entry.get("source")
            if source in images and source != image_id:
                children.setdefault(source, []).append(image_id)
            else:
                roots.append(image_id)

        def family(image_id: str) -> list[str]:
            out = [image_id]
            for child in children.get(image_id, []):
                out += family(child)
            return out

        return [family(r) for r in roots]

    def usage(self, client) -> int:
        """Bytes taken by the union of the layers of hgm's recorded images still present."""
        from sandbox.images import layer_sizes

        with self._locked() as data:
            self._forget_missing(data, client)
            ids = list(data["images"])
        return sum(dict(pair for i in ids for pair in layer_sizes(i, client)).values())

    @staticmethod
    def _owned_refs(image_id: str, entry: dict[str, Any], client) -> list[str]:
        from sandbox.images import image_id as id_of

        return [ref for ref in entry["refs"] if id_of(ref, client) == image_id]

    def _forget_missing(self, data: dict[str, Any], client) -> None:
        """Drop entries whose image is gone or none of whose names still point at it."""
        for image_id, entry in list(data["images"].items()):
            if not self._owned_refs(image_id, entry, client):
                del data["images"][image_id]

    def prune(self, client, max_bytes: int, *, dry_run: bool = False, keep: set[str] = frozenset()) -> PruneReport:  # type: ignore[assignment]
        """Remove least-recently-used groups of hgm's images until their layers fit `max_bytes`.

        `keep` holds image ids (or names) that must stay (in use by this process).
        """
        from sandbox.images import image_id as id_of
        from sandbox.images import layer_sizes, remove_ref

        with self._locked() as data:
            self._forget_missing(data, client)
            images = data["images"]
            layers = {i: dict(layer_sizes(i, client)) for i in images}
            kept_ids = {id_of(k, client) or k for k in keep}

            def union(ids: set[str]) -> int:
                merged: dict[str, int] = {}
                for i in ids:
                    merged.update(layers[i])
                return sum(merged.values())

            present = set(images)
            report = PruneReport(max_bytes, union(present), 0)
            groups = self._groups(images)
            groups.sort(key=lambda g: max(images[i].get("last_used", 0) for i in g))
            for group in groups:
                refs = [r for i in group for r in images[i]["refs"]]
                size = union(present) - union(present - set(group))
                item = Removal(refs, size, max(images[i].get("last_used", 0) for i in group))
                report.groups.append(item)
                if union(present) <= max_bytes:
                    item.kept_because = "under the cap"
                    continue
                if kept_ids & set(group):
                    item.kept_because = "in use by this run"
                    continue
                if dry_run:
                    item.removed = True
                    present -= set(group)
                    continue
                reasons = []
                for image_id in reversed(group):  # images built on top first, then their source
                    for ref in self._owned_refs(image_id, images[image_id], client):
                        reason = remove_ref(ref, client)
                        if reason:
                            reasons.append(reason)
                if reasons:
                    item.kept_because = reasons[0]
                    continue
                item.removed = True
                present -= set(group)
                for image_id in group:
                    images.pop(image_id, None)
            report.after = union(present)
            return report


__all__ = ["DEFAULT_MAX_GB", "GB", "ImageCache", "MAX_GB_VAR", "PruneReport", "cache_root", "default_max_bytes"]
