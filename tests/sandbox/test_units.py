"""Fast unit tests of sandbox helpers (no engine needed)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from sandbox import SandboxError, SandboxSpec, get_backend
from sandbox.base_image import debian_mirror
from sandbox.capture import HeadTailBuffer
from sandbox.api import Mount
from sandbox.local_backend import LocalBackend


def test_head_tail_buffer_keeps_everything_below_the_limit():
    buf = HeadTailBuffer(10)
    buf.write(b"abc")
    buf.write(b"defg")
    assert buf.text() == "abcdefg" and not buf.truncated


def test_head_tail_buffer_keeps_head_and_tail_and_marks_the_gap():
    buf = HeadTailBuffer(10)
    for i in range(1000):
        buf.write(f"{i:04d}".encode())
    assert buf.total == 4000 and buf.dropped == 3990
    text = buf.text()
    assert text.startswith("00000") and text.endswith("80999")
    assert "[... 3990 bytes of output dropped" in text


def test_head_tail_buffer_with_one_huge_write():
    buf = HeadTailBuffer(6)
    buf.write(b"HEAD" + b"x" * 10_000 + b"TAIL")
    assert buf.text().startswith("HEA") and buf.text().endswith("AIL") and buf.dropped == 10_002


def test_head_tail_buffer_survives_split_utf8():
    buf = HeadTailBuffer(5)
    buf.write("ééééé".encode())  # 10 bytes; the cut splits characters
    assert buf.truncated and isinstance(buf.text(), str)


def test_debian_mirror_reads_deb822_sources(tmp_path: Path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_debian_mirror_reads_one_line_sources_and_falls_back(tmp_path: Path):
    assert debian_mirror(tmp_path) == "http://deb.debian.org/debian"
    (tmp_path / "sources.list").write_text("deb http://old.example/debian bookworm main\n")
    assert debian_mirror(tmp_path) == "http://old.example/debian"


def test_local_backend_warns_once_per_instance(caplog):
    for _ in range(2):
        backend = LocalBackend()
        with caplog.at_level(logging.WARNING, logger="sandbox.local_backend"):
            backend.open(SandboxSpec()).close()
            backend.open(SandboxSpec()).close()
        warnings = [r for r in caplog.records if "weaker than Docker" in r.getMessage()]
        assert len(warnings) == 1
        caplog.clear()


def test_local_mounts_are_symlinks_and_resolve_maps_paths(tmp_path: Path):
    (tmp_path / "f.txt").write_text("shared")
    with LocalBackend().open(SandboxSpec(mounts=(Mount(str(tmp_path), "/mnt/shared"),))) as box:
        assert box.resolve("/mnt/shared/f.txt") == str(tmp_path.resolve() / "f.txt")  # the source itself
        assert box.resolve("/mnt/shared/../shared/f.txt") == str(tmp_path.resolve() / "f.txt")
        assert box.resolve("/mnt/sharedx/f.txt") == str(box.root / "mnt" / "sharedx" / "f.txt")
        assert box.exec(f"cat {box.resolve('/mnt/shared/f.txt')}").stdout == "shared"
        assert box.exec("cat ../mnt/shared/f.txt").stdout == "shared"  # relative paths go through the symlink


def test_local_env_values_in_sandbox_terms_are_mapped(tmp_path: Path):
    gateway, nested = tmp_path / "gw", tmp_path / "nested"
    gateway.mkdir()
    nested.mkdir()
    mounts = (Mount(str(gateway), "/hgm-gateway"), Mount(str(nested), "/hgm-gateway/inner"))
    with LocalBackend().open(SandboxSpec(mounts=mounts)) as box:
        m = box.map_env_value
        gw = str(gateway.resolve())
        assert m("/hgm-gateway/gw.sock") == f"{gw}/gw.sock"  # under a target: need not exist
        assert m("/hgm-gateway") == gw
        assert m("/hgm-gateway/inner/x") == str(nested.resolve() / "x")  # the longest target wins
        assert m("unix:/hgm-gateway/gw.sock") == f"unix:{gw}/gw.sock"
        assert m(f"/work:/usr/bin:{sys.executable}") == f"{box.root}/work:/usr/bin:{sys.executable}"
        assert m("/tmp") == str(box.root / "tmp")
        # left alone: missing sandbox paths, host paths, already mapped paths, non-paths
        for value in ("/work/not-yet", sys.executable, str(box.root / "work"), f"{gw}/gw.sock",
                      "http://127.0.0.1:8080/v1", "relative/path", "{\"task\": \"/work\"}", ""):
            assert m(value) == value
        box.put("/work/repo/a.txt", b"a")
        assert m("/work/repo") == str(box.root / "work" / "repo")  # exists now


def test_local_mount_targets_must_be_absolute(tmp_path: Path):
    for target in ("relative", "/", "/.."):
        with pytest.raises(SandboxError, match="absolute path other than /"):
            LocalBackend().open(SandboxSpec(mounts=(Mount(str(tmp_path), target),)))


def test_local_put_writes_through_writable_mounts_only(tmp_path: Path):
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    mounts = (Mount(str(rw), "/mnt/rw", read_only=False), Mount(str(ro), "/mnt/ro"))
    with LocalBackend().open(SandboxSpec(mounts=mounts, workdir="/mnt")) as box:
        box.put("/mnt/rw/a.txt", b"a")
        with pytest.raises(SandboxError, match="/mnt/ro is mounted read-only"):
            box.put("ro/b.txt", b"b")  # relative to the workdir /mnt
    assert (rw / "a.txt").read_bytes() == b"a" and list(ro.iterdir()) == []
    assert rw.exists() and ro.exists()  # closing removes the links, never the sources


def test_backends_say_what_they_run_and_where():
    assert LocalBackend.python == sys.executable and LocalBackend().where("any:image") == "on this host"


def test_local_rlimits_apply(tmp_path: Path):
    from sandbox.api import Limits

    with LocalBackend().open(SandboxSpec(limits=Limits(file_size_mb=1))) as box:
        res = box.exec("head -c 3000000 /dev/zero > big; echo rc=$?; stat -c %s big")
        assert "rc=0" not in res.stdout and res.stdout.strip().endswith("1048576")


def test_unknown_backend_name_is_an_error():
    with pytest.raises(SandboxError, match="unknown sandbox backend"):
        get_backend("podman")  # type: ignore[arg-type]


def test_auto_falls_back_to_local_with_a_reason(caplog):
    with caplog.at_level(logging.WARNING, logger="sandbox"):
        backend = get_backend("auto", image="hgm-no-such-image:never")
    assert backend.name == "local"
    assert "hgm-no-such-image:never" in backend.selection_reason or "Docker" in backend.selection_reason
    assert any("sandbox backend: local" in r.getMessage() for r in caplog.records)


def test_require_or_skip_fails_under_its_gate_and_skips_otherwise(require_or_skip, monkeypatch):
    monkeypatch.setenv("HGM_REQUIRE_LOCAL_ISOLATION", "1")
    with pytest.raises(pytest.fail.Exception, match="HGM_REQUIRE_LOCAL_ISOLATION=1 but no unshare"):
        require_or_skip("HGM_REQUIRE_LOCAL_ISOLATION", "no unshare")
    monkeypatch.delenv("HGM_REQUIRE_LOCAL_ISOLATION")
    with pytest.raises(pytest.skip.Exception, match="no unshare"):
        require_or_skip("HGM_REQUIRE_LOCAL_ISOLATION", "no unshare")
