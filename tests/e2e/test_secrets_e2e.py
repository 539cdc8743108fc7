"""End to end: a provider key the gateway holds never lands in a run, whatever the model says.

The scripted model puts the key value everywhere it can: in replies (trajectories), in the
solve patch, in the diagnosis, and in the agent's own source during self-improvement (the
child that would carry it into agents.git). The run uses Docker sandboxes; afterwards no
file of the run directory, no row of hgm.db and no object of agents.git holds the key or
its tail.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-proj-Hq3Vn8Kd2Tx6Lw9Pb4Zr7Mc1Fy5Gs0Ju"  # shaped like a provider key, and the gateway's value
TASKS = "hgm-mini__iniconf-1,hgm-mini__iniconf-2"


def _bash(thought: str, command: str) -> str:
    return f"THOUGHT: {thought} ({KEY})\n```bash\n{command}\n```"


def write_script(path: Path) -> Path:
    submit = _bash("done", "submit")
    diagnosis = {
        "log_summary": f"The agent printed {KEY}.",
        "what_went_wrong": "It gave up.",
        "improvement_proposal": "Remind it to read the code.",
        "implementation_plan": "Append a note to agent/prompts.py.",
        "problem_description": f"Add a reminder to the prompts. The key is {KEY}.",
    }
    script = {
        "default": [_bash("leak into the repository", f"echo 'TOKEN = \"{KEY}\"' > leaked.py && cat leaked.py"), submit],
        "diagnose": [json.dumps(diagnosis)],
        "improve": [_bash("leak into my own source", f"printf '\\nNOTE = \"{KEY}\"\\n' >> agent/prompts.py"), submit],
    }
    path.write_text(json.dumps(script), encoding="utf-8")
    return path


def _all_text(run_dir: Path) -> list[tuple[str, bytes]]:
    """Every file's bytes, the database as SQL text, and every git object's content."""
    out = [(str(p.relative_to(run_dir)), p.read_bytes()) for p in run_dir.rglob("*") if p.is_file()]
    conn = sqlite3.connect(f"file:{run_dir / 'hgm.db'}?mode=ro", uri=True)
    out.append(("hgm.db (dump)", "\n".join(conn.iterdump()).encode()))
    conn.close()
    git = ["git", "--git-dir", str(run_dir / "agents.git")]
    objects = subprocess.run([*git, "cat-file", "--batch-all-objects", "--batch"], capture_output=True, check=True).stdout
    out.append(("agents.git objects", objects))
    return out


@pytest.mark.docker
@pytest.mark.e2e
def test_a_key_value_never_reaches_the_run_directory(tmp_path: Path) -> None:
    from sandbox import docker_unavailable_reason

    reason = docker_unavailable_reason()
    if reason:
        if os.environ.get("HGM_REQUIRE_DOCKER") == "1":
            pytest.fail(f"HGM_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)
    run_dir = tmp_path / "run"
    env = {**os.environ, "OPENAI_API_KEY": KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [sys.executable, "-m", "hgm", "run", "--run-dir", str(run_dir), "--model", f"scripted:{write_script(tmp_path / 's.json')}",
         "--sandbox", "docker", "--tasks", TASKS, "--budget-evals", "3", "--workers", "1", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["nodes"] >= 2, summary  # a child was made (and admitted) from a diff that carried the key
    assert KEY not in done.stdout + done.stderr
    redacted = 0
    for name, data in _all_text(run_dir):
        assert KEY.encode() not in data and KEY[-8:].encode() not in data, f"the key is in {name}"
        redacted += data.count(b"[redacted]")
    assert redacted >= 3  # the key was there to redact: trajectories, patches, diagnosis, the child's source
    child = subprocess.run(["git", "--git-dir", str(run_dir / "agents.git"), "show", "node/1:agent/prompts.py"],
                           capture_output=True, text=True, check=True).stdout
    assert 'NOTE = "[redacted]"' in child
