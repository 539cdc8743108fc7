"""Environment images from a host-side wheel cache, built with no network, cached by input hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluators.environments import EnvironmentBuilder

PYPROJECT = """[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "hgmdemo"
version = "0.1"
"""


@pytest.fixture()
def package(tmp_path: Path) -> Path:
    root = tmp_path / "hgmdemo"
    (root / "hgmdemo").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "hgmdemo" / "__init__.py").write_text("ANSWER = 42\n")
    return root


def test_no_requirements_means_the_base_image() -> None:
    assert EnvironmentBuilder().build([]) == "hgm-base:latest"


def test_fill_wheels_builds_local_packages(package: Path, tmp_path: Path) -> None:
    builder = EnvironmentBuilder(wheel_cache=tmp_path / "cache")
    wheels = builder.fill_wheels([str(package)], tmp_path / "wheels")
    assert [w.name.split("-")[0] for w in wheels] == ["hgmdemo"]
    assert (tmp_path / "cache" / wheels[0].name).is_file()


@pytest.mark.docker
@pytest.mark.slow
def test_builds_offline_and_caches(package: Path, tmp_path: Path, docker_backend) -> None:
    import docker

    from sandbox.api import SandboxSpec

    builder = EnvironmentBuilder(wheel_cache=tmp_path / "cache")
    tag = builder.build([str(package)])
    try:
        assert tag.startswith("hgm-env:")
        assert builder.build([str(package)]) == tag  # cached: same inputs, same image
        with docker_backend.open(SandboxSpec(image=tag)) as box:
            out = box.exec("python3 -c 'import hgmdemo; print(hgmdemo.ANSWER)'; id -u", timeout=60)
        assert out.stdout.split() == ["42", "1000"]
    finally:
        docker.from_env().images.remove(tag, force=True)


def test_tag_changes_when_a_local_project_changes(package: Path, tmp_path: Path, docker_backend) -> None:
    builder = EnvironmentBuilder(wheel_cache=tmp_path / "cache")
    before = builder.tag_for([str(package)])
    (package / "hgmdemo" / "__init__.py").write_text("ANSWER = 43\n")
    assert builder.tag_for([str(package)]) != before


def test_task_repo_tasks_name_requirements(calc_suite_path: Path, tmp_path: Path) -> None:
    import shutil

    import yaml

    from evaluators.suite import load_suite

    copy = tmp_path / "suite"
    shutil.copytree(calc_suite_path, copy)
    meta_path = copy / "tasks" / "calc-1" / "task.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta["hgm_requirements"] = ["vendor/hgmdemo"]
    meta_path.write_text(yaml.safe_dump(meta))
    asked: list[list[str]] = []
    suite = load_suite(copy, image_builder=lambda reqs: asked.append(reqs) or "hgm-env:test")
    calc1, calc2 = suite.tasks()
    assert suite.image(calc1) == "hgm-env:test" and suite.image(calc2) == "hgm-base:latest"
    assert asked == [["vendor/hgmdemo"]]  # not inside the suite: passed through as a pip spec
