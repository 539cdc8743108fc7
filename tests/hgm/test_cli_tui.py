"""`hgm tui`: argument handling and one-line errors (the app itself: tests/hgm/tui)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hgm.cli import build_app
from hgm.tui.app import HgmTui
from tools.tui_demo import build_demo_run, small_agent


@pytest.fixture
def started(monkeypatch) -> list[HgmTui]:
    """Apps the command would run (not run: there is no terminal here)."""
    apps: list[HgmTui] = []
    monkeypatch.setattr(HgmTui, "run", lambda self: apps.append(self))
    return apps


def invoke(*args: str):
    return CliRunner().invoke(build_app(), list(args))


def test_tui_is_listed_in_help() -> None:
    result = invoke("--help")
    assert result.exit_code == 0 and "tui" in result.stdout
    assert "Browse a run" in invoke("tui", "--help").stdout


def test_tui_opens_a_run_by_path_or_name(tmp_path: Path, started, monkeypatch) -> None:
    build_demo_run(tmp_path / "runs" / "demo", seed_dir=small_agent(tmp_path / "seed"))
    monkeypatch.chdir(tmp_path)
    result = invoke("tui", "demo", "--no-follow", "--export-dir", "out")
    assert result.exit_code == 0, result.output
    [app] = started
    assert app.first_data.name == "demo" and app.follow is False and app.export_dir == Path("out")
    app.first_data.close()
    assert invoke("tui", str(tmp_path / "runs" / "demo")).exit_code == 0
    assert started[1].follow is None  # on while the run is live
    started[1].first_data.close()


def test_tui_without_a_run_opens_the_picker(tmp_path: Path, started, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("tui").exit_code == 0  # no ./runs yet: an empty picker, not an error
    assert started[0].first_data is None and started[0].runs_dir == Path("runs")


@pytest.mark.parametrize("broken", ["missing", "no-git", "file-as-runs-dir"])
def test_tui_bad_input_is_one_line_and_exit_2(tmp_path: Path, started, broken: str) -> None:
    if broken == "missing":
        args = ["tui", str(tmp_path / "nope")]
        words = "does not exist"
    elif broken == "no-git":
        run = build_demo_run(tmp_path / "runs" / "demo", seed_dir=small_agent(tmp_path / "seed"), children=1)
        shutil.rmtree(run / "agents.git")
        args, words = ["tui", str(run)], "agents.git"
    else:
        (tmp_path / "file").write_text("")
        args, words = ["tui", "--runs-dir", str(tmp_path / "file")], "not a folder"
    result = invoke(*args)
    assert result.exit_code == 2 and not started
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
