"""The image cache: what hgm pulled, LRU removal under a cap, never anyone else's images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.api import SandboxError
from sandbox.image_cache import GB, ImageCache, default_max_bytes
from sandbox.images import split_ref


class NotFound(Exception):
    pass


class FakeAPI:
    """Just enough of docker's APIClient: names -> ids, histories, removal."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.histories: dict[str, list[dict]] = {}
        self.in_use: set[str] = set()

    def add(self, name: str, image_id: str, parent: str | None = None, size: int = GB) -> None:
        self.names[name] = image_id
        base = list(self.histories[parent]) if parent else []
        self.histories[image_id] = [{"Created": len(base), "CreatedBy": f"layer of {image_id}", "Size": size}] + base

    def inspect_image(self, ref: str) -> dict:
        import docker.errors

        if ref not in self.names:
            raise docker.errors.ImageNotFound(ref)
        return {"Id": self.names[ref]}

    def history(self, image: str) -> list[dict]:
        return self.histories[self.names.get(image, image)]

    def remove_image(self, ref: str) -> None:
        import docker.errors

        if self.names.get(ref) in self.in_use:
            raise docker.errors.APIError("conflict: image is being used by running container")
        self.names.pop(ref, None)


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeAPI()


@pytest.fixture()
def cache(tmp_path: Path) -> ImageCache:
    return ImageCache(tmp_path / "images.json")


def test_prune_removes_least_recently_used_groups_of_hgm_images_only(cache: ImageCache, monkeypatch) -> None:
    client = FakeClient()
    api = client.api
    api.add("env", "sha256:env", size=2 * GB)  # a shared parent, not hgm's
    api.add("reg/ns/old:latest", "sha256:old", parent="sha256:env")
    api.add("hgm-testbed:old", "sha256:oldlayer", parent="sha256:old")
    api.add("reg/ns/new:latest", "sha256:new", parent="sha256:env")
    api.add("user/own:latest", "sha256:own", parent="sha256:env")  # same naming, never recorded
    clock = iter(range(100, 200))
    monkeypatch.setattr("sandbox.image_cache.time.time", lambda: next(clock))
    cache.record("sha256:old", "reg/ns/old:latest", "pulled")
    cache.record("sha256:oldlayer", "hgm-testbed:old", "built", source="sha256:old")
    cache.record("sha256:new", "reg/ns/new:latest", "pulled")
    cache.touch("sha256:new")
    # union of layers: env 2 + old 1 + its layer 1 + new 1 (the shared parent counted once)
    assert cache.usage(client) == 5 * GB

    dry = cache.prune(client, 4 * GB, dry_run=True)
    assert [g.removed for g in dry.groups] == [True, False] and dry.after == 3 * GB
    assert "reg/ns/old:latest" in api.names  # a dry run removes nothing

    report = cache.prune(client, 4 * GB)
    assert report.before == 5 * GB and report.after == 3 * GB
    assert report.groups[0].refs == ["reg/ns/old:latest", "hgm-testbed:old"] and report.groups[0].size == 2 * GB
    assert "reg/ns/old:latest" not in api.names and "hgm-testbed:old" not in api.names
    assert "reg/ns/new:latest" in api.names and "user/own:latest" in api.names
    assert list(cache.entries()) == ["sha256:new"]

    # pinned (in use by this run) and engine-refused (a container uses it) images stay
    assert not cache.prune(client, 0, keep={"reg/ns/new:latest"}).groups[0].removed
    api.in_use.add("sha256:new")
    kept = cache.prune(client, 0).groups[0]
    assert not kept.removed and "being used" in kept.kept_because
    assert "user/own:latest" in api.names


def test_a_name_that_now_points_elsewhere_is_not_ours(cache: ImageCache) -> None:
    client = FakeClient()
    client.api.add("ns/x:latest", "sha256:mine")
    cache.record("sha256:mine", "ns/x:latest", "pulled")
    client.api.add("ns/x:latest", "sha256:theirs")  # the user pulled over the name
    report = cache.prune(client, 0)
    assert report.groups == [] and client.api.names["ns/x:latest"] == "sha256:theirs"
    assert cache.entries() == {}


def test_state_file_survives_damage(cache: ImageCache) -> None:
    cache.path.write_text("{not json")
    cache.record("sha256:a", "a:latest", "pulled")
    assert json.loads(cache.path.read_text())["images"]["sha256:a"]["refs"] == ["a:latest"]


def test_cap_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("HGM_IMAGES_MAX_GB", raising=False)
    assert default_max_bytes() == 50 * GB
    monkeypatch.setenv("HGM_IMAGES_MAX_GB", "1.5")
    assert default_max_bytes() == int(1.5 * GB)
    monkeypatch.setenv("HGM_IMAGES_MAX_GB", "lots")
    with pytest.raises(SandboxError, match="HGM_IMAGES_MAX_GB='lots' is not a number"):
        default_max_bytes()


def test_split_ref_keeps_registry_ports() -> None:
    assert split_ref("127.0.0.1:5000/swebench/sweb.eval.x86_64.a:latest") == (
        "127.0.0.1:5000/swebench/sweb.eval.x86_64.a", "latest")
    assert split_ref("127.0.0.1:5000/ns/img") == ("127.0.0.1:5000/ns/img", "latest")
    assert split_ref("img:v2") == ("img", "v2")


def test_only_a_first_record_counts_as_added(cache: ImageCache, tmp_path) -> None:
    cache.record("sha256:a", "hgm-task:a", "built")
    cache.record("sha256:a", "hgm-task:a2", "built")  # another name of the same image
    assert cache.added == 1
    again = ImageCache(tmp_path / "images.json")  # a later session finds it recorded: nothing new to prune for
    again.record("sha256:a", "hgm-task:a", "built")
    assert again.added == 0
