"""End to end: `python -m agent solve` as a subprocess, its model reached through a real gateway.

The agent gets its environment from `agent_env` only (never a copy of ours), talks to the
gateway over a unix socket, and runs real bash in a real git repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hgm.gateway import BudgetLimit, GatewayConfig, JsonlRecorder, agent_env, read_records, start_gateway

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REPLACE_TOOL = PROJECT_ROOT / "agent" / "tools" / "replace.py"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}
CALC = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a + b  # multiply\n"
TEST_CALC = """\
import unittest

from calc import add, mul


class CalcTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)

    def test_mul(self):
        self.assertEqual(mul(2, 3), 6)
"""
SECRETS = {
    "OPENAI_API_KEY": "sk-test-openai-0123456789abcdef",
    "ANTHROPIC_API_KEY": "sk-ant-test-fedcba9876543210",
    "AWS_SECRET_ACCESS_KEY": "awsSecretValue0123456789XYZ",
    "HGM_PROVIDER_CREDENTIALS": "credential-value-44556677",
}
TAGS = {"run": "r1", "node": "0", "task": "calc-1", "purpose": "solve"}


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(repo), **GIT_ENV}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True)


# -B everywhere: same-size edits within one second would otherwise run a stale .pyc.
def unit_tests(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-B", "-m", "unittest", "-q"], cwd=repo, capture_output=True, text=True, timeout=60)


@pytest.fixture
def calc_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "calc.py").write_text(CALC)
    (repo / "test_calc.py").write_text(TEST_CALC)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "calc with two bugs")
    return repo


def reply(thought: str, command: str) -> str:
    return f"THOUGHT: {thought}\n\n```bash\n{command}\n```"


def run_agent(gateway: Any, repo: Path, out: Path, *flags: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    problem = out.parent / "problem.txt"
    problem.write_text("test_calc.py fails: add and mul give wrong results. Fix calc.py.")
    home = out.parent / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "agent", "solve", "--problem", str(problem), "--repo", str(repo), "--out", str(out), *flags],
        cwd=PROJECT_ROOT,
        env=agent_env(gateway, TAGS, home=str(home)),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def trajectory(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "trajectory.jsonl").read_text().splitlines()]


def fix_script(tmp_path: Path) -> Path:
    """A scripted model that fixes calc.py with real bash and edit actions."""
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            [
                reply("First I run the tests.", "ls && python3 -B -m unittest -q 2>&1 | tail -3"),
                reply(
                    "add subtracts; I fix it with the replace helper.",
                    f"python3 {REPLACE_TOOL} calc.py <<'EOF'\n<<<<<<< SEARCH\n    return a - b\n=======\n"
                    "    return a + b\n>>>>>>> REPLACE\nEOF",
                ),
                reply("mul adds; sed fixes it.", "sed -i 's/return a + b  # multiply/return a * b  # multiply/' calc.py"),
                reply("I note the change in a new file and rerun the tests.",
                      "cat > NOTES.md <<'EOF'\nFixed add and mul.\nEOF\npython3 -B -m unittest -q"),
                reply("The tests pass.", "submit"),
            ]
        )
    )
    return script


@pytest.mark.e2e
def test_scripted_model_fixes_the_repo_through_the_gateway(tmp_path: Path, calc_repo: Path) -> None:
    assert unit_tests(calc_repo).returncode != 0
    script = fix_script(tmp_path)
    calls = tmp_path / "calls.jsonl"
    out = tmp_path / "out"
    with start_gateway(GatewayConfig(model=f"scripted:{script}"), JsonlRecorder(calls)) as gateway:
        proc = run_agent(gateway, calc_repo, out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["exit_reason"] == "submitted" and result["steps"] == 5

    steps = trajectory(out)
    assert [s["action"] for s in steps][-1] == "submit"
    assert steps[0]["observation"]["exit_code"] == 0 and "FAILED" in steps[0]["observation"]["output"]
    assert steps[3]["observation"]["exit_code"] == 0
    assert unit_tests(calc_repo).returncode == 0

    records = list(read_records(calls))
    assert len(records) == 5 and all(r.status == 200 for r in records)
    assert all(r.tags == TAGS for r in records)
    assert sum(r.total_tokens for r in records) == result["tokens"]

    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(calc_repo), str(fresh))
    git(fresh, "apply", "--check", str(out / "patch.diff"))
    git(fresh, "apply", str(out / "patch.diff"))
    assert unit_tests(fresh).returncode == 0
    assert (fresh / "NOTES.md").read_text() == "Fixed add and mul.\n"
    assert "__pycache__" not in (out / "patch.diff").read_text()


@pytest.mark.e2e
def test_agent_process_cannot_see_provider_keys(
    tmp_path: Path, calc_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    dump = "tr '\\0' ' ' < /proc/$PPID/cmdline; echo; echo ===; tr '\\0' '\\n' < /proc/$PPID/environ; echo ===; env"
    script = tmp_path / "script.json"
    script.write_text(json.dumps([reply("Show the environment.", dump), reply("Done.", "submit")]))
    out = tmp_path / "out"
    with start_gateway(GatewayConfig(model=f"scripted:{script}")) as gateway:
        proc = run_agent(gateway, calc_repo, out)
    assert proc.returncode == 0, proc.stderr
    observed = trajectory(out)[0]["observation"]["output"]
    agent_cmdline, agent_environ, shell_environ = observed.split("===")
    assert "-m agent solve" in agent_cmdline  # we really read the agent process's own environment
    assert "HGM_LLM_URL=" in agent_environ and "HGM_LLM_URL=" in shell_environ
    everything = "\n".join(p.read_text() for p in out.iterdir()) + proc.stdout + proc.stderr
    for name, value in SECRETS.items():
        assert name not in observed and value not in everything


@pytest.mark.e2e
def test_budget_refusal_stops_the_agent(tmp_path: Path, calc_repo: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([reply("Looking around.", "ls")] * 20))
    calls = tmp_path / "calls.jsonl"
    out = tmp_path / "out"
    config = GatewayConfig(model=f"scripted:{script}", tag_budgets={"task": BudgetLimit(tokens=2000)})
    with start_gateway(config, JsonlRecorder(calls)) as gateway:
        proc = run_agent(gateway, calc_repo, out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["exit_reason"] == "cost_limit" and result["steps"] < 20
    records = list(read_records(calls))
    assert records[-1].status == 402 and "budget_exceeded" in (records[-1].error or "")
    assert sum(r.status == 402 for r in records) == 1  # the agent does not hammer a spent budget


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.local_model
def test_local_model_runs_a_full_attempt(tmp_path: Path, calc_repo: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    out = tmp_path / "out"
    config = GatewayConfig(model="local/smollm2", n_ctx=2048, default_max_tokens=64, seed=1)
    with start_gateway(config, JsonlRecorder(calls)) as gateway:
        proc = run_agent(gateway, calc_repo, out, "--max-steps", "3", "--command-timeout", "10")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["exit_reason"] in {"submitted", "step_limit"}
    steps = trajectory(out)
    records = list(read_records(calls))
    assert 1 <= len(steps) <= 3 and len(records) == len(steps)
    assert all(r.status == 200 and r.completion_tokens > 0 and r.tags == TAGS for r in records)
    # Grammar-constrained decoding: every reply is one thought plus one bash block the agent runs.
    assert all("format_error" not in s and s["action"] for s in steps)
    assert [r.response for r in records] == [s["messages"][-2 if s["action"] != "submit" else -1]["content"] for s in steps]
    assert (out / "patch.diff").exists()


@pytest.mark.e2e
def test_replay_of_a_recorded_run_reproduces_it(tmp_path: Path, calc_repo: Path) -> None:
    calls, first, second = tmp_path / "calls.jsonl", tmp_path / "first", tmp_path / "second"
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(calc_repo), str(fresh))
    with start_gateway(GatewayConfig(model=f"scripted:{fix_script(tmp_path)}"), JsonlRecorder(calls)) as gateway:
        assert run_agent(gateway, calc_repo, first).returncode == 0
    with start_gateway(GatewayConfig(model=f"replay:{calls}")) as gateway:
        assert run_agent(gateway, fresh, second).returncode == 0
    assert [s["action"] for s in trajectory(second)] == [s["action"] for s in trajectory(first)]
    assert (second / "patch.diff").read_bytes() == (first / "patch.diff").read_bytes()
    assert unit_tests(fresh).returncode == 0
