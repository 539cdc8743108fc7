"""`hgm suite validate` and `hgm eval` end to end on a tiny custom suite (scripted model)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluators"))

from taskrepo_fixture import build_task_repo  # noqa: E402

from hgm.cli import build_app  # noqa: E402

AGENT = Path(__file__).resolve().parents[2]  # the repository root holds the seed agent/
SCRIPT = {
    "calc-1": [
        "THOUGHT: the sign is wrong.\n```bash\nsed -i 's/return a - b/return a + b/' calc.py\n```",
        "THOUGHT: done.\n```bash\nsubmit\n```",
    ],
    "default": [],
}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HGM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "hgm-cache"))


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_task_repo(tmp_path_factory.mktemp("cli") / "calc")


def run(*args: str):
    return CliRunner().invoke(build_app(), list(args))


def test_validate_passes_on_a_good_suite(suite_dir: Path) -> None:
    result = run("suite", "validate", str(suite_dir), "--backend", "local", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] and [t["gold"]["outcome"] for t in data["tasks"]] == ["resolved", "resolved"]
    assert [t["empty"]["outcome"] for t in data["tasks"]] == ["unresolved", "unresolved"]


def test_validate_fails_when_gold_does_not_resolve(suite_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(suite_dir, broken)
    gold = broken / "tasks" / "calc-1" / "gold.patch"
    gold.write_text(gold.read_text().replace("+    return a + b", "+    return b - a"))
    result = run("suite", "validate", str(broken), "--backend", "local", "--tasks", "calc-1")
    assert result.exit_code == 1
    assert "gold patch: unresolved" in result.stdout


def test_validate_bad_task_file_is_a_one_line_error(suite_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(suite_dir, broken)
    (broken / "tasks" / "calc-2" / "tests.json").write_text('{"PASS_TO_PASS": []}')
    result = run("suite", "validate", str(broken), "--backend", "local")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: tasks/calc-2: field 'FAIL_TO_PASS' is missing"


def _eval(suite_dir: Path, tmp_path: Path, backend: str) -> dict:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    result = run("eval", "--agent", str(AGENT), "--suite", str(suite_dir), "--model", f"scripted:{script}",
                 "--backend", backend, "--workers", "2", "--out", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_eval_runs_the_agent_and_grades(suite_dir: Path, tmp_path: Path) -> None:
    data = _eval(suite_dir, tmp_path, "local")
    outcomes = {row["task"]: row["outcome"] for row in data["tasks"]}
    assert outcomes == {"calc-1": "resolved", "calc-2": "empty_patch"}
    assert data["resolved"] == 1 and data["measured"] == 2
    low, high = data["ci95"]
    assert 0 < low < 0.5 < high < 1
    assert all(row["tokens"] > 0 for row in data["tasks"])
    assert (tmp_path / "out" / "calc-1" / "patch.diff").read_text().count("+    return a + b") == 1


@pytest.mark.docker
def test_eval_on_docker_reaches_the_gateway_through_the_socket(suite_dir: Path, tmp_path: Path, require_or_skip) -> None:
    from sandbox import docker_unavailable_reason

    if reason := docker_unavailable_reason():
        require_or_skip("HGM_REQUIRE_DOCKER", reason)
    data = _eval(suite_dir, tmp_path, "docker")
    assert {row["task"]: row["outcome"] for row in data["tasks"]} == {"calc-1": "resolved", "calc-2": "empty_patch"}


def test_eval_needs_a_model(suite_dir: Path) -> None:
    result = run("eval", "--agent", str(AGENT), "--suite", str(suite_dir))
    assert result.exit_code == 2 and "give --model" in result.stderr


def test_eval_unknown_task_and_agent(suite_dir: Path, tmp_path: Path) -> None:
    result = run("eval", "--agent", str(AGENT), "--suite", str(suite_dir), "--model", "scripted:x", "--tasks", "nope")
    assert result.exit_code == 2 and "has no task nope" in result.stderr
    result = run("eval", "--agent", str(tmp_path / "missing"), "--suite", str(suite_dir), "--model", "scripted:x")
    assert result.exit_code == 2 and "no such directory" in result.stderr


def test_eval_an_archived_agent_version(suite_dir: Path, tmp_path: Path) -> None:
    from archive import Run

    seed = tmp_path / "seed"
    shutil.copytree(AGENT / "agent", seed / "agent", ignore=shutil.ignore_patterns("__pycache__"))
    Run.create(tmp_path / "run", {"suite": "calc"}, seed).close()
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    result = run("eval", "--agent", f"{tmp_path / 'run'}:0", "--suite", str(suite_dir), "--tasks", "calc-1",
                 "--model", f"scripted:{script}", "--backend", "local", "--json")
    assert result.exit_code == 0, result.output
    assert [row["outcome"] for row in json.loads(result.stdout)["tasks"]] == ["resolved"]
    missing = run("eval", "--agent", f"{tmp_path / 'run'}:7", "--suite", str(suite_dir), "--model", f"scripted:{script}")
    assert missing.exit_code == 2 and "7" in missing.stderr


def test_eval_with_attempts_and_generations(suite_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    result = run("eval", "--agent", str(AGENT), "--suite", str(suite_dir), "--tasks", "calc-1", "--model",
                 f"scripted:{script}", "--backend", "local", "--attempts", "2", "--generations", "2",
                 "--eval-tokens", "100000", "--out", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["evaluation"]["attempts"], data["evaluation"]["generations"], data["evaluation"]["max_tokens"]) == (2, 2, 100000)
    [row] = data["tasks"]
    assert row["outcome"] == "resolved" and [a["operator"] for a in row["attempts"]] == ["sample", "sample", "refine", "recombine"]
    assert row["selected"] in (1, 2, 3, 4) and all(a["valid"] for a in row["attempts"])
    assert (tmp_path / "out" / "calc-1" / "attempts" / "log.jsonl").is_file()
    bad = run("eval", "--agent", str(AGENT), "--suite", str(suite_dir), "--model", f"scripted:{script}", "--preset", "huge")
    assert bad.exit_code == 2 and "evaluation.preset" in bad.stderr
