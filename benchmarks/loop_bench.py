"""Throughput of the search loop: evaluations per minute with 1, 2 and 4 workers.

Real machinery (archive, gateway, scheduler, executor, sandboxes, grading in a fresh
sandbox) with a scripted, instant model. Every solve makes a small edit, so every patch
is graded for real. Expansions are made instant (the child is the parent plus a comment)
so that the figures measure evaluation throughput, not the agent's own test suite.

Per evaluation (from the archive's timing columns), time is split into:
  sandbox      the rest of the evaluation: opening, filling and removing the agent's
               sandbox (incl. the task repo), checkout and artifacts
  agent        the `python -m agent solve` process
  grading      the fresh grading sandbox: apply patch, run the tests, parse the log
  bookkeeping  recording the result: archive transaction and scheduler

Usage: python benchmarks/loop_bench.py [--evals 200] [--workers 1,2,4] [--sandbox docker]
Prints a table and, as the last line, a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from archive.records import ExpansionRecord  # noqa: E402
from hgm.config import build_config  # noqa: E402
from hgm.evolve.expand import ExpansionOutcome  # noqa: E402
from hgm.loop.job_handler import SandboxJobHandler  # noqa: E402
from hgm.loop.session import create_run, run_session  # noqa: E402

SCRIPT = {
    "default": [
        "THOUGHT: touch the readme.\n```bash\nprintf 'bench\\n' >> README.md && git status --short\n```",
        "THOUGHT: done.\n```bash\nsubmit\n```",
    ],
}


class InstantExpansionHandler(SandboxJobHandler):
    """Expansions copy the parent and append a comment: no model, no sandbox."""

    def expand(self, job):  # type: ignore[override]
        parent = job.action.node_id
        child = self.run_dir / "expansions" / f"bench-{self.job_key(job)}"
        shutil.copytree(self.checkouts.get(parent), child, ignore=shutil.ignore_patterns(".complete"))
        with (child / "agent" / "prompts.py").open("a") as fh:
            fh.write(f"\n# bench child of {parent}\n")
        return ExpansionOutcome(ExpansionRecord(parent, "ok", lesson="bench", started=time.time()), child)


def one(evals: int, workers: int, sandbox: str, root: Path) -> dict:
    script = root / "script.json"
    script.write_text(json.dumps(SCRIPT))
    config = build_config(overrides={
        "model": f"scripted:{script}", "sandbox": sandbox, "workers": workers,
        "budget": {"evals": evals}, "agent": {"solve_step_limit": 3},
    })
    run = create_run(config, root / f"run-w{workers}")
    try:
        t0 = time.monotonic()
        result = run_session(run, config, install_signals=False, handler_factory=InstantExpansionHandler)
        wall = time.monotonic() - t0
        timings = [e for e in run.evaluations() if e["utility"] is not None]
    finally:
        run.close()
    n = len(timings)
    mean = {k: sum(t[k] or 0.0 for t in timings) / max(n, 1) for k in ("agent_s", "grade_s", "total_s")}
    mean["sandbox_s"] = max(0.0, mean["total_s"] - mean["agent_s"] - mean["grade_s"])
    book = result.executor.record_s / max(n, 1)
    return {
        "workers": workers,
        "evals": result.summary["evaluations"],
        "nodes": result.summary["nodes"],
        "wall_s": round(wall, 2),
        "evals_per_min": round(60.0 * result.summary["evaluations"] / wall, 2),
        "per_eval_s": {
            "sandbox": round(mean["sandbox_s"], 3),
            "agent": round(mean["agent_s"], 3),
            "grading": round(mean["grade_s"], 3),
            "bookkeeping": round(book, 3),
        },
        "outcomes": result.summary["evaluation_outcomes"],
        "stop_reason": result.summary["stop_reason"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--sandbox", default="docker", choices=("docker", "local"))
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    root = Path(tempfile.mkdtemp(prefix="hgm-loop-bench-"))
    rows = []
    try:
        for workers in counts:
            rows.append(one(args.evals, workers, args.sandbox, root))
            print(f"... {workers} worker(s) done: {rows[-1]['evals_per_min']} evals/min", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"loop throughput: {args.evals} evaluations, scripted instant model, {args.sandbox} sandbox, {os.cpu_count()} CPU(s)")
    header = f"{'workers':>7} {'evals':>5} {'nodes':>5} {'wall s':>8} {'evals/min':>9} | {'sandbox':>7} {'agent':>6} {'grading':>7} {'bookkeeping':>11}  (s per eval)"
    print(header)
    print("-" * len(header))
    for r in rows:
        p = r["per_eval_s"]
        print(f"{r['workers']:>7} {r['evals']:>5} {r['nodes']:>5} {r['wall_s']:>8.1f} {r['evals_per_min']:>9.1f} | "
              f"{p['sandbox']:>7.3f} {p['agent']:>6.3f} {p['grading']:>7.3f} {p['bookkeeping']:>11.3f}")
    print(json.dumps({"benchmark": "loop_bench", "sandbox": args.sandbox, "evals": args.evals,
                      "cpus": os.cpu_count(), "results": rows}))


if __name__ == "__main__":
    main()
