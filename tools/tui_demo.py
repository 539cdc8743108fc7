"""Build a small, realistic run for `hgm tui` (the README screenshot, the TUI's tests).

    python tools/tui_demo.py runs/demo                       # build the run
    python tools/tui_demo.py runs/demo --screenshot docs/tui.svg   # and save the main view

The run is a real archive (`archive.Run.create`, `add_node`, `record_eval`,
`record_expansion`, `record_llm_call`): the real seed agent as node 0, children that
edit its source, evaluations on mini-suite task ids with trajectories, patches, grading
reports and test logs on disk, model calls and failed expansions. Everything is seeded
and its clock is fixed, so two builds are identical (same commits, same times).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from archive import EvalRecord, ExpansionRecord, Run  # noqa: E402

DEMO_START = 1_767_000_000.0  # 2025-12-29, a fixed clock for reproducible builds
TASKS = [f"{repo}-{i}" for repo in ("intervals", "ledger", "iniconf", "ratelimit", "textstats") for i in (1, 2, 3)]
CONFIG = {
    "suite": "mini",
    "model": "scripted:demo",
    "budget": {"evals": 80, "usd": 2.0},
    "policy": {"name": "hgm", "final_rule": "lineage"},
}

# (file, old text, new text): what each child changes in its parent (appended when `old` is gone)
EDITS = [
    ("agent/prompts.py", 'STEPS_LEFT = "\\n\\nNote: {left} step(s) left. Submit before they run out."',
     'STEPS_LEFT = "\\n\\nNote: {left} step(s) left. Check `git diff` is not empty, then submit."'),
    ("agent/shell.py", "DRAIN_SECONDS = 1.0", "DRAIN_SECONDS = 2.0  # slow test runners flush their output late"),
    ("agent/prompts.py", "Run long jobs on a smaller scale, or in several steps.",
     "Run long jobs on a smaller scale, or in several steps (e.g. one test file at a time)."),
    ("agent/actions.py", 'SHELL_LANGUAGES = ("bash", "sh", "shell")', 'SHELL_LANGUAGES = ("bash", "sh", "shell", "console")'),
    ("agent/loop.py", "    max_steps: int = 30", "    max_steps: int = 40"),
    ("agent/prompts.py", "fix the\nsource (leave the tests alone unless the task asks otherwise), check the fix, then submit.",
     "fix the\nsource (leave the tests alone unless the task asks otherwise), run the failing test\n"
     "again to check the fix, then submit."),
    ("agent/loop.py", "    max_output: int = 10_000", "    max_output: int = 6_000  # long logs crowd out the task"),
    ("agent/shell.py", 'QUIET_TOOLS = {"PAGER": "cat", "GIT_PAGER": "cat", "TERM": "dumb", "PIP_PROGRESS_BAR": "off"}',
     'QUIET_TOOLS = {"PAGER": "cat", "GIT_PAGER": "cat", "TERM": "dumb", "PIP_PROGRESS_BAR": "off",\n'
     '               "PYTHONDONTWRITEBYTECODE": "1"}'),
]
# (lesson, what went wrong, proposal, plan): the diagnosis behind EDITS[i], same order
DIAGNOSES = [
    ("empty_patches", "Half of the attempts ended with an empty patch: the agent explored, then submitted nothing.",
     "Check the diff before submitting.", "Change the steps-left note to ask for a non-empty `git diff` first."),
    ("failed_task:ledger-3", "Test output was cut before the assertion message because the runner flushed late.",
     "Wait longer for output after a command ends.", "Raise DRAIN_SECONDS in agent/shell.py."),
    ("failed_task:textstats-1", "The whole test suite ran past the command timeout; the attempt learned nothing.",
     "Suggest running one test file at a time.", "Extend the timeout note in agent/prompts.py with that example."),
    ("failed_task:iniconf-1", "The model wrote its command in a console block, refused three times as a format error.",
     "Accept console blocks as shell.", 'Add "console" to SHELL_LANGUAGES in agent/actions.py.'),
    ("stochastic", "Attempts that were close to a fix ran out of steps.",
     "Allow a few more steps.", "Raise Limits.max_steps in agent/loop.py from 30 to 40."),
    ("failed_task:intervals-2", "The agent submitted without running the failing test again; an off-by-one slipped by.",
     "Re-run the failing test before submitting.", "Say so in the solve prompt (agent/prompts.py)."),
    ("context_length", "Long pytest logs filled the context window before the agent reached the fix.",
     "Keep less of each command's output.", "Lower max_output in agent/loop.py."),
    ("failed_task:ratelimit-2", "Byte-code files written by test runs ended up in the patch.",
     "Stop Python from writing byte-code in commands.", "Set PYTHONDONTWRITEBYTECODE=1 in agent/shell.py."),
]
FAILURES = ["own tests failed: test_contract_cli (agent.tests.test_contract)", "the diff is empty",
            "the child edited agent/tests/test_contract.py (contract tests must stay untouched)"]


@contextlib.contextmanager
def fixed_clock(start: float) -> Iterator[list[float]]:
    """`time.time()` returns `clock[0]` (advance it by hand); git commits get the same date."""
    clock = [start]
    env = {"GIT_AUTHOR_DATE": f"@{int(start)} +0000", "GIT_COMMITTER_DATE": f"@{int(start)} +0000"}
    with mock.patch("time.time", lambda: clock[0]), mock.patch.dict(os.environ, env):
        yield clock


def seed_agent(dest: Path) -> Path:
    """A copy of the real seed agent package (what `hgm run` stores as node 0)."""
    import agent

    shutil.copytree(Path(agent.__file__).parent, dest / "agent", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def small_agent(dest: Path) -> Path:
    """A stand-in seed agent holding only the lines EDITS change (stable commits for tests)."""
    for path, old, _ in EDITS:
        file = dest / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text((file.read_text() if file.exists() else '"""Stand-in agent module."""\n') + old + "\n")
    return dest


def apply_edit(tree: Path, index: int) -> None:
    path, old, new = EDITS[index % len(EDITS)]
    file = tree / path
    text = file.read_text()
    file.write_text(text.replace(old, new, 1) if old in text else text + f"\n# tweak {index}: {new.splitlines()[0].strip()}\n")


def write_artifacts(folder: Path, task: str, status: str, rng: random.Random) -> None:
    """trajectory.jsonl, patch.diff, report.json and test.log as an evaluation leaves them."""
    folder.mkdir(parents=True, exist_ok=True)
    module = task.split("-")[0]
    steps = [
        (f"grep -rn 'def ' {module}/ | head -20", f"{module}/core.py:12:def parse(text):\n{module}/core.py:40:def merge(a, b):"),
        (f"python -m pytest -q tests/test_{module}.py -x", "F.....\nFAILED tests/test_core.py::test_edge - AssertionError: 5 != 4\n1 failed, 5 passed in 0.21s"),
        (f"sed -n 35,50p {module}/core.py", "    if a.end >= b.start:\n        return Span(a.start, max(a.end, b.end))"),
        (f"python {os.path.join('/tools', 'replace.py')} {module}/core.py 'a.end >= b.start' 'a.end > b.start'", "replaced 1 occurrence"),
        (f"python -m pytest -q tests/test_{module}.py", "......\n6 passed in 0.19s" if status == "resolved" else "F.....\n1 failed, 5 passed"),
    ]
    taken = steps[: rng.randint(3, 5)]
    with (folder / "trajectory.jsonl").open("w") as fh:
        for n, (command, output) in enumerate(taken, 1):
            fh.write(json.dumps({"step": n, "action": command,
                                 "observation": {"exit_code": 0 if "passed" in output and "failed" not in output else 1,
                                                 "output": output, "timed_out": False}}) + "\n")
        fh.write(json.dumps({"step": len(taken) + 1, "action": "submit", "observation": None}) + "\n")
    patch = "" if status == "empty_patch" else (
        f"diff --git a/{module}/core.py b/{module}/core.py\n--- a/{module}/core.py\n+++ b/{module}/core.py\n"
        "@@ -36,3 +36,3 @@ def merge(a, b):\n-    if a.end >= b.start:\n+    if a.end > b.start:\n"
        "         return Span(a.start, max(a.end, b.end))\n")
    (folder / "patch.diff").write_text(patch)
    resolved = status == "resolved"
    report = {"instance_id": task, "outcome": status, "duration": round(rng.uniform(1, 4), 2), "detail": "",
              "report": {task: {"resolved": resolved, "tests_status": {
                  "FAIL_TO_PASS": {"success": ["tests/test_core.py::test_edge"] if resolved else [],
                                   "failure": [] if resolved else ["tests/test_core.py::test_edge"]},
                  "PASS_TO_PASS": {"success": ["tests/test_core.py::test_basic"], "failure": []}}}}}
    (folder / "report.json").write_text(json.dumps(report, indent=1))
    (folder / "test.log").write_text(f"+ python -m pytest -rA tests\n{'PASSED' if resolved else 'FAILED'} tests/test_core.py::test_edge\n")


def build_demo_run(run_dir: Path, *, start: float = DEMO_START, children: int = 12, seed: int = 7,
                   status: str = "finished", seed_dir: Path | None = None) -> Path:
    """Write the demo run at `run_dir` (must not exist) and return its path.

    `seed_dir` is node 0's source (default: a copy of the real seed agent).
    """
    rng = random.Random(seed)
    run_dir = Path(run_dir)
    with fixed_clock(start) as clock, tempfile.TemporaryDirectory(prefix="hgm-demo-") as tmp:

        def tick(seconds: float) -> float:
            clock[0] += seconds
            return clock[0]

        run = Run.create(run_dir, CONFIG, seed_dir or seed_agent(Path(tmp) / "seed"), hgm_version="demo")
        skill = {0: 0.35}
        job = 0

        def evaluate(node: int, tasks: list[str]) -> None:
            nonlocal job
            for task in tasks:
                job += 1
                started = tick(5)
                status_ = "resolved" if rng.random() < skill[node] else rng.choice(["unresolved", "unresolved", "empty_patch"])
                if rng.random() < 0.04:
                    status_ = "error_infra"
                folder = run_dir / "evals" / f"node{node}" / f"{task}-s1-{job}"
                write_artifacts(folder, task, status_, rng)
                tokens = rng.randint(6000, 30000)
                cost = round(tokens * 4e-7, 6)
                for _ in range(rng.randint(2, 4)):
                    run.record_llm_call(model="demo", purpose="solve", node_id=node, task_id=task,
                                        prompt_tokens=tokens // 4, completion_tokens=tokens // 12,
                                        cost_usd=cost / 3, latency_s=round(rng.uniform(0.8, 4.0), 2), at=tick(8))
                finished = tick(rng.uniform(20, 60))
                run.record_eval(EvalRecord(
                    node, task, status_, started=started, finished=finished, agent_s=finished - started - 3,
                    grade_s=3.0, total_s=finished - started, tokens=tokens, cost_usd=cost,
                    trajectory_path=str((folder / "trajectory.jsonl").relative_to(run_dir)),
                    log_path=str((folder / "test.log").relative_to(run_dir)),
                    detail="" if status_ != "error_infra" else "sandbox did not start: docker timeout"))

        run.log_event("session_start", {"session": "demo", "workers": 2})
        run.set_status("running")
        evaluate(0, rng.sample(TASKS, 6))
        made = 0
        attempt = 0
        while made < children:
            attempt += 1
            parents = sorted(skill)
            parent = rng.choices(parents, weights=[1 + 3 * skill[p] for p in parents])[0]
            started = tick(10)
            run.record_llm_call(model="demo", purpose="diagnose", node_id=parent, prompt_tokens=9000,
                                completion_tokens=700, cost_usd=0.0041, latency_s=6.1, at=tick(6))
            run.record_llm_call(model="demo", purpose="improve", node_id=parent, prompt_tokens=22000,
                                completion_tokens=2600, cost_usd=0.0107, latency_s=14.2, at=tick(30),
                                error="rate limited (429), retried" if attempt % 5 == 0 else None)
            if attempt % 4 == 3:
                run.record_expansion(ExpansionRecord(parent, "failed", reason=FAILURES[attempt % len(FAILURES)],
                                                     cost_usd=0.0148, tokens=34300, started=started, finished=tick(40)))
                continue
            with tempfile.TemporaryDirectory(prefix="hgm-child-") as child_tmp:
                child_dir = Path(child_tmp) / "tree"
                run.checkout(parent, child_dir)
                apply_edit(child_dir, made)
                lesson, wrong, proposal, plan = DIAGNOSES[made % len(DIAGNOSES)]  # what apply_edit(made) does
                diagnosis = json.dumps({"fell_back": False, "attempts": 1, "errors": [], "problem": proposal,
                                        "reply": {"what_went_wrong": wrong, "improvement_proposal": proposal,
                                                  "implementation_plan": plan}})
                finished = tick(60)
                child = run.add_node(parent, child_dir, "self_improve", lesson, diagnosis, expansion=ExpansionRecord(
                    parent, "ok", cost_usd=0.0148, tokens=34300, started=started, finished=finished,
                    lesson=lesson, diagnosis=diagnosis))
            made += 1
            skill[child] = min(0.9, max(0.05, skill[parent] + rng.uniform(-0.15, 0.25)))
            evaluate(child, rng.sample(TASKS, rng.randint(2, 8)))
            if rng.random() < 0.5:
                evaluate(parent, [t for t in TASKS if t not in _measured(run, parent)][:2])
        run.log_event("session_end", {"session": "demo", "reason": "budget_evals"})
        if status != "running":
            run.set_status(status)
        run.close()
    return run_dir


def _measured(run: Run, node: int) -> set[str]:
    return {r["task_id"] for r in run.evaluations(node) if r["utility"] is not None}


async def save_screenshot(run_dir: Path, dest: Path, size: tuple[int, int] = (120, 34)) -> Path:
    """The main view of `run_dir` with the shipped version selected, saved as SVG."""
    from hgm.tui.app import HgmTui
    from hgm.tui.data import RunData

    app = HgmTui(RunData.open(run_dir), follow=False)
    async with app.run_test(size=size) as pilot:
        screen = app.run_screen
        while screen is None or not screen.ready:
            await pilot.pause(0.05)
            screen = app.run_screen
        shipped = screen.snapshot.header.shipped
        screen.agent_tree.reveal(shipped)
        await pilot.pause(0.5)
        app.save_screenshot(filename=dest.name, path=str(dest.parent))
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="where to build the demo run (must not exist)")
    parser.add_argument("--screenshot", type=Path, help="also save the main view as this SVG file")
    args = parser.parse_args()
    if args.run_dir.exists():
        parser.error(f"{args.run_dir} already exists; choose a new path")
    build_demo_run(args.run_dir)
    print(f"built {args.run_dir}")
    if args.screenshot:
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        asyncio.run(save_screenshot(args.run_dir, args.screenshot))
        print(f"saved {args.screenshot}")


if __name__ == "__main__":
    main()
