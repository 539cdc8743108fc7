"""End to end: `hgm run` with a scripted model evolves the agent for real.

Self-improvement edits the agent's source (committed on a branch), evaluations run in
sandboxes and are graded in fresh ones, the tree grows to >= 5 nodes, the archive holds
every evaluation with its artifacts, and `hgm export --best` writes an agent directory
whose own tests pass. Also: seeded runs repeat exactly; `hgm best`; bad options.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from run_db import rows
from scripted import MARKER, SOLVED_TASK, write_script

REPO = Path(__file__).resolve().parents[2]
TASKS = "hgm-mini__iniconf-1,hgm-mini__iniconf-2,hgm-mini__iniconf-3,hgm-mini__iniconf-4,hgm-mini__iniconf-5,hgm-mini__iniconf-6"


def hgm(*args: str, timeout: float = 900, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **(env or {})}
    done = subprocess.run([sys.executable, "-m", "hgm", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"hgm {' '.join(args)} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def evolve(tmp_path: Path, sandbox: str, budget: int = 12, workers: int = 2, seed: int = 0,
           name: str = "run", executor: tuple[str, ...] = (), env: dict[str, str] | None = None) -> tuple[Path, dict]:
    script = write_script(tmp_path / "script.json")
    run_dir = tmp_path / name
    done = hgm("run", "--run-dir", str(run_dir), "--model", f"scripted:{script}", "--sandbox", sandbox,
               "--tasks", TASKS, "--budget-evals", str(budget), "--workers", str(workers),
               "--seed", str(seed), "--json", *executor, env=env)
    return run_dir, json.loads(done.stdout)


def executor_options(executor: str, request: pytest.FixtureRequest) -> dict:
    """`evolve` keyword arguments that run the jobs on `executor` (ray: the module's test cluster)."""
    if executor == "threads":
        return {}
    cluster = request.getfixturevalue("ray_cluster")
    return {"executor": ("--executor", "ray", "--ray-address", cluster.address), "env": cluster.env}


def check_evolved_run(tmp_path: Path, run_dir: Path, summary: dict, budget: int) -> None:
    assert summary["status"] == "finished" and summary["stop_reason"] == "budget_evals"
    # the archive holds every evaluation, each once, with its artifacts on disk
    evals = rows(run_dir, "SELECT node_id, task_id, status, trajectory_path, log_path FROM evaluations")
    measured = [r for r in evals if r[2] not in ("error_infra", "abandoned")]
    assert len(measured) == budget == summary["evaluations"]
    assert len({(r[0], r[1]) for r in measured}) == budget
    for _, _, _, trajectory, log in measured:
        assert (run_dir / trajectory).is_file() and (run_dir / log).is_file()
    statuses = {r[2] for r in measured}
    assert statuses <= {"resolved", "empty_patch"}
    resolved = [r for r in measured if r[2] == "resolved"]
    assert all(r[1] == SOLVED_TASK for r in resolved)  # only the task the script really fixes
    # the tree grew by real self-modifications, each on its own branch
    nodes = rows(run_dir, "SELECT id, parent_id, operator, lesson FROM nodes ORDER BY id")
    assert len(nodes) >= 5 and summary["nodes"] == len(nodes)
    assert all(n[2] == "revise" and n[3] for n in nodes[1:])
    git = ["git", "--git-dir", str(run_dir / "agents.git")]
    for node_id, parent_id, _, _ in nodes[1:]:
        diff = subprocess.run([*git, "diff", f"node/{parent_id}", f"node/{node_id}"], capture_output=True,
                              text=True, check=True).stdout
        assert "agent/prompts.py" in diff and MARKER in diff
    exps = rows(run_dir, "SELECT status, diagnosis FROM expansions")
    assert all(json.loads(d)["fell_back"] is False for s, d in exps if s == "ok")
    # every model call went through the gateway and was recorded with its purpose
    purposes = {r[0] for r in rows(run_dir, "SELECT DISTINCT purpose FROM llm_calls")}
    assert {"solve", "diagnose", "improve"} <= purposes
    # hgm best and hgm export --best agree; the exported agent's own tests pass
    best = json.loads(hgm("best", str(run_dir), "--json").stdout)
    assert best["node"] == summary["best"]["node"]
    out = tmp_path / "best-agent"
    exported = json.loads(hgm("export", str(run_dir), "--best", "--to", str(out), "--json").stdout)
    assert exported["node"] == best["node"] and (out / "agent" / "__main__.py").is_file()
    tests = subprocess.run([sys.executable, "-m", "unittest", "discover", "-s", "agent/tests", "-t", "."],
                           cwd=out, capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0, tests.stderr[-2000:]


@pytest.mark.e2e
@pytest.mark.slow
def test_scripted_evolution_local_sandbox(tmp_path: Path) -> None:
    run_dir, summary = evolve(tmp_path, "local")
    check_evolved_run(tmp_path, run_dir, summary, 12)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.parametrize("executor", ["threads", pytest.param("ray", marks=pytest.mark.ray)])
def test_scripted_evolution_docker_sandbox(tmp_path: Path, executor: str, request: pytest.FixtureRequest) -> None:
    """The same evolution, jobs in threads or as Ray tasks on a worker node: the same archive shape."""
    run_dir, summary = evolve(tmp_path, "docker", **executor_options(executor, request))
    check_evolved_run(tmp_path, run_dir, summary, 12)
    sessions = rows(run_dir, "SELECT payload FROM events WHERE kind = 'session_start'")
    assert json.loads(sessions[0][0])["executor"] == executor


def _shape(run_dir: Path) -> tuple:
    nodes = rows(run_dir, "SELECT id, parent_id, lesson FROM nodes ORDER BY id")
    evals = rows(run_dir, "SELECT node_id, task_id, status FROM evaluations ORDER BY id")
    exps = rows(run_dir, "SELECT parent_id, child_id, status, lesson FROM expansions ORDER BY id")
    return nodes, evals, exps


@pytest.mark.e2e
@pytest.mark.slow
def test_seeded_runs_with_a_scripted_model_repeat(tmp_path: Path) -> None:
    a, _ = evolve(tmp_path, "local", budget=4, workers=1, seed=7, name="a")
    b, _ = evolve(tmp_path, "local", budget=4, workers=1, seed=7, name="b")
    assert _shape(a) == _shape(b)
    assert len(_shape(a)[0]) >= 2


def test_bad_options_fail_in_one_line_and_write_nothing(tmp_path: Path) -> None:
    target = tmp_path / "r"
    for args, words in (
        (["--policy", "nope"], "policy"),
        (["--budget-evals", "0"], "budget.evals"),
        (["--suite", "no-such-suite"], "no-such-suite"),
        (["--config", str(tmp_path / "missing.toml")], "missing.toml"),
        (["--tasks", "no-such-task"], "no-such-task"),
        (["--ray-address", "auto"], "--ray-address needs --executor ray"),
        (["--executor", "k8s"], "executor"),
        (["--registry", "127.0.0.1:5000"], "--registry applies to SWE-bench suites"),
    ):
        done = hgm("run", "--run-dir", str(target), "--model", "scripted:/dev/null", *args, check=False, timeout=120)
        assert done.returncode == 2, (args, done.stderr)
        assert words in done.stderr and done.stderr.count("\n") == 1, done.stderr
        assert not target.exists()
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[budget]\nevals = 'many'\n")
    done = hgm("run", "--run-dir", str(target), "--config", str(bad_toml), check=False, timeout=120)
    assert done.returncode == 2 and "budget.evals" in done.stderr and not target.exists()


def test_resume_and_best_reject_what_is_not_a_run(tmp_path: Path) -> None:
    for command in ("resume", "best"):
        done = hgm(command, str(tmp_path / "nothing"), check=False, timeout=120)
        assert done.returncode == 2 and "does not exist" in done.stderr


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.local_model
def test_offline_default_runs_to_completion(tmp_path: Path) -> None:
    """`make demo` in small: the default model, suite and sandbox, only the budget cut down."""
    run_dir = tmp_path / "demo"
    done = hgm("run", "--run-dir", str(run_dir), "--budget-evals", "2", "--workers", "1", "--json", timeout=1200)
    summary = json.loads(done.stdout)
    assert summary["status"] == "finished" and summary["evaluations"] == 2
    assert summary["llm_calls"] > 0 and summary["tokens"] > 0
    assert summary["expansions_ok"] + summary["expansions_failed"] >= 1
    reasons = rows(run_dir, "SELECT status, reason FROM expansions")
    assert all(status == "ok" or reason for status, reason in reasons)  # every failure says why
