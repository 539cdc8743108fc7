"""Real models for real users: limits by model class, bad models refused, outages not scored.

Provider calls go through litellm to a loopback OpenAI-compatible server (tests/hgm/fake_openai.py)
or to nothing at all (a closed port, an unknown provider): no key or network is needed.
"""

from __future__ import annotations

import json
import socket
import sys
import sqlite3
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hgm.cli import build_app

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_openai import FakeOpenAI  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TASK = "hgm-mini__iniconf-1"
FIX = "sed -i 's/lowered = value.strip()$/lowered = value.strip().lower()/' iniconf/config.py && git diff --stat"


def bash(thought: str, command: str) -> str:
    return f"THOUGHT: {thought}\n```bash\n{command}\n```"


def run(*args: str):
    return CliRunner().invoke(build_app(), list(args))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------- refused up front
@pytest.mark.parametrize("case", ["unknown model", "rejected key", "unreachable server"])
def test_a_bad_model_is_refused_before_anything_is_written(case: str, tmp_path: Path) -> None:
    target = tmp_path / "run"
    with FakeOpenAI([bash("x", "submit")]) as server:
        server.mode = 401
        model, base, expected = {
            "unknown model": ("nonsense/xyz", None, "unknown model nonsense/xyz"),
            "rejected key": ("openai/fake", server.base, "refused the key"),
            "unreachable server": ("openai/fake", f"http://127.0.0.1:{closed_port()}/v1", "cannot reach the model server"),
        }[case]
        extra = ["--api-base", base] if base else []
        result = run("run", "--model", model, *extra, "--budget-evals", "1", "--run-dir", str(target), "--sandbox", "local")
        evaluated = run("eval", "--agent", str(REPO), "--suite", "mini", "--tasks", TASK, "--model", model, *extra,
                        "--backend", "local", "--out", str(tmp_path / "eval"))
    for outcome in (result, evaluated):
        assert outcome.exit_code == 2, outcome.output
        lines = [line for line in outcome.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert not target.exists() and not (tmp_path / "eval").exists()


# --------------------------------------------------------------------------- limits by model class
def thirty_steps(path: Path) -> Path:
    steps = [bash(f"look around ({i})", "ls > /dev/null") for i in range(27)]
    path.write_text(json.dumps({TASK: [*steps, bash("fix it", FIX), bash("done", "submit")], "default": []}))
    return path


@pytest.mark.e2e
@pytest.mark.slow
def test_a_model_that_needs_thirty_steps_fits_provider_limits_not_local_ones(tmp_path: Path) -> None:
    script = thirty_steps(tmp_path / "script.json")
    outcomes = {}
    for profile in ("auto", "local"):
        result = run("eval", "--agent", str(REPO), "--suite", "mini", "--tasks", TASK, "--model", f"scripted:{script}",
                     "--backend", "local", "--agent-profile", profile, "--json", "--out", str(tmp_path / f"eval-{profile}"))
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        outcomes[profile] = (data["tasks"][0]["outcome"], data["agent_limits"]["solve_step_limit"])
        target = tmp_path / f"run-{profile}"
        result = run("run", "--model", f"scripted:{script}", "--tasks", TASK, "--budget-evals", "1", "--sandbox", "local",
                     "--agent-profile", profile, "--run-dir", str(target), "--json")
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout[result.stdout.index("{"):])
        outcomes[f"run-{profile}"] = summary["evaluation_outcomes"]
        shown = run("show", str(target))
        assert f"solve {outcomes[profile][1]} steps" in shown.output
    assert outcomes["auto"] == ("resolved", 100)  # scripted models stand in for providers
    assert outcomes["local"][0] != "resolved" and outcomes["local"][1] == 4
    assert outcomes["run-auto"] == {"resolved": 1} and "resolved" not in outcomes["run-local"]


# --------------------------------------------------------------------------- an outage mid-run
@pytest.mark.e2e
@pytest.mark.slow
def test_a_provider_outage_is_never_scored_and_resume_completes_the_run(tmp_path: Path) -> None:
    target = tmp_path / "run"
    tasks = "hgm-mini__iniconf-1,hgm-mini__iniconf-2,hgm-mini__intervals-1,hgm-mini__ledger-1"
    args = ["--model", "openai/fake", "--tasks", tasks, "--budget-evals", "4", "--seed-evals", "4", "--workers", "1",
            "--sandbox", "local", "--solve-steps", "4"]
    with FakeOpenAI([bash("fix", FIX), bash("done", "submit")], outage_after=4) as server:
        result = run("run", "--api-base", server.base, *args, "--run-dir", str(target))
        assert result.exit_code == 1, result.output
        assert "model provider" in result.output and f"hgm resume {target}" in result.output
        outage_seen = server.failed
        server.mode, server.outage_after = "ok", None
        resumed_at = time.time()
        resumed = run("resume", str(target), "--json")
        assert resumed.exit_code == 0, resumed.output
    assert outage_seen >= 3
    with sqlite3.connect(target / "hgm.db") as db:
        rows = db.execute("SELECT status, utility, detail, finished FROM evaluations ORDER BY id").fetchall()
        status = db.execute("SELECT status FROM run").fetchone()[0]
    measured = [r for r in rows if r[1] is not None]
    during_outage = [r for r in rows if r[3] < resumed_at and r[0] == "error_infra"]
    assert len(measured) == 4 and status == "finished"
    assert len(during_outage) >= 3 and all(r[2].startswith("model provider failed") for r in during_outage)
    # the first session measured what it ran before the outage began, and nothing after it
    assert 1 <= sum(1 for r in measured if r[3] < resumed_at) < 4


# --------------------------------------------------------------------------- a real self-hosted server
@pytest.fixture
def llama_server(tmp_path: Path):
    """llama-cpp-python's OpenAI-compatible server serving the bundled SmolLM2 on loopback."""
    import subprocess
    import urllib.request

    from hgm.gateway.backends.local_llama import resolve_local_model

    port = closed_port()
    log = (tmp_path / "llama-server.log").open("wb")  # a file, not a pipe: the server logs a lot
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(resolve_local_model("smollm2")),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--model_alias", "smollm2"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (tmp_path / "llama-server.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"llama_cpp.server did not start: {tail}")
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.mark.local_model
@pytest.mark.e2e
@pytest.mark.slow
def test_a_run_through_a_self_hosted_openai_compatible_server(llama_server: str, tmp_path: Path) -> None:
    target = tmp_path / "run"
    result = run("run", "--model", "openai/smollm2", "--api-base", llama_server, "--tasks", TASK, "--budget-evals", "1",
                 "--sandbox", "local", "--solve-steps", "2", "--run-dir", str(target), "--json")
    assert result.exit_code == 0, result.output
    with sqlite3.connect(target / "hgm.db") as db:
        calls = db.execute("SELECT model, purpose, prompt_tokens, completion_tokens, error FROM llm_calls").fetchall()
        (config,) = db.execute("SELECT config FROM run").fetchone()
        evals = db.execute("SELECT status FROM evaluations WHERE utility IS NOT NULL").fetchall()
    assert json.loads(config)["api_base"] == llama_server
    assert len(evals) == 1
    answered = [c for c in calls if c[4] is None]
    assert answered and all(c[0] == "openai/smollm2" and c[1] == "solve" and c[2] > 0 and c[3] > 0 for c in answered)
