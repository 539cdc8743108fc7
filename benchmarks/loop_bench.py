"""Throughput of the search loop: evaluations per minute with 1, 2 and 4 workers, per executor.

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
  ray          (Ray executor) what running the job as a Ray task adds: dispatch, the
               agent bundle, the job's files packed and unpacked, the head's round trip

`--executor ray` runs the same jobs as Ray tasks: on the cluster at `--ray-address`, or
on a private one-node cluster the benchmark starts once (its start is not timed).

Usage: python benchmarks/loop_bench.py [--evals 200] [--workers 1,2,4] [--sandbox docker]
                                       [--executor threads,ray] [--ray-address auto|HOST:PORT]
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

SLOTS = "docker_slots"

SCRIPT = {
    "default": [
        "THOUGHT: touch the readme.\n```bash\nprintf 'bench\\n' >> README.md && git status --short\n```",
        "THOUGHT: done.\n```bash\nsubmit\n```",
    ],
}


class InstantExpansions:
    """Expansions copy the parent and append a comment, on the head: no model, no sandbox."""

    def expand(self, job):
        parent = job.action.node_id
        child = self.run_dir / "expansions" / f"bench-{self.job_key(job)}"
        self.run.checkout(parent, child)
        with (child / "agent" / "prompts.py").open("a") as fh:
            fh.write(f"\n# bench child of {parent}\n")
        return ExpansionOutcome(ExpansionRecord(parent, "ok", lesson="bench", started=time.time()), child)


class InstantExpansionHandler(InstantExpansions, SandboxJobHandler):
    pass


def ray_handler():
    from hgm.loop.ray_executor import RayJobHandler

    return type("InstantExpansionRayHandler", (InstantExpansions, RayJobHandler), {})


def one(evals: int, workers: int, sandbox: str, root: Path, executor: str, address: str | None) -> dict:
    script = root / "script.json"
    script.write_text(json.dumps(SCRIPT))
    config = build_config(overrides={
        "model": f"scripted:{script}", "sandbox": sandbox, "workers": workers, "executor": executor,
        "ray": {"address": address}, "budget": {"evals": evals}, "agent": {"solve_step_limit": 3},
    })
    run = create_run(config, root / f"run-{executor}-w{workers}")
    factory = InstantExpansionHandler if executor == "threads" else ray_handler()
    try:
        t0 = time.monotonic()
        result = run_session(run, config, workers=workers, install_signals=False, handler_factory=factory)
        wall = time.monotonic() - t0
        timings = [e for e in run.evaluations() if e["utility"] is not None]
    finally:
        run.close()
    n = len(timings)
    mean = {k: sum(t[k] or 0.0 for t in timings) / max(n, 1) for k in ("agent_s", "grade_s", "total_s")}
    mean["sandbox_s"] = max(0.0, mean["total_s"] - mean["agent_s"] - mean["grade_s"])
    book = result.executor.record_s / max(n, 1)
    ray_s = getattr(result.handler, "overhead_s", None)
    return {
        "executor": executor,
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
            "ray": round(ray_s / max(n, 1), 3) if ray_s is not None else None,
        },
        "outcomes": result.summary["evaluation_outcomes"],
        "stop_reason": result.summary["stop_reason"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--sandbox", default="docker", choices=("docker", "local"))
    parser.add_argument("--executor", default="threads", help="threads, ray, or both: threads,ray")
    parser.add_argument("--ray-address", default=None, help="the Ray cluster (default: a private one-node cluster)")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    executors = [e.strip() for e in args.executor.split(",") if e.strip()]
    if "ray" in executors:  # connect once: a cluster's start is not the loop's throughput
        from hgm.loop import ray_cluster

        ray_cluster.connect(args.ray_address, slot_resource=SLOTS, local_slots=max(counts))
    root = Path(tempfile.mkdtemp(prefix="hgm-loop-bench-"))
    rows = []
    try:
        for executor in executors:
            for workers in counts:
                rows.append(one(args.evals, workers, args.sandbox, root, executor, args.ray_address))
                print(f"... {executor}, {workers} worker(s) done: {rows[-1]['evals_per_min']} evals/min",
                      file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"loop throughput: {args.evals} evaluations, scripted instant model, {args.sandbox} sandbox, {os.cpu_count()} CPU(s)")
    header = (f"{'executor':>8} {'workers':>7} {'evals':>5} {'nodes':>5} {'wall s':>8} {'evals/min':>9} | {'sandbox':>7} "
              f"{'agent':>6} {'grading':>7} {'bookkeeping':>11} {'ray':>6}  (s per eval)")
    print(header)
    print("-" * len(header))
    for r in rows:
        p = r["per_eval_s"]
        ray_s = "-" if p["ray"] is None else f"{p['ray']:.3f}"
        print(f"{r['executor']:>8} {r['workers']:>7} {r['evals']:>5} {r['nodes']:>5} {r['wall_s']:>8.1f} "
              f"{r['evals_per_min']:>9.1f} | {p['sandbox']:>7.3f} {p['agent']:>6.3f} {p['grading']:>7.3f} "
              f"{p['bookkeeping']:>11.3f} {ray_s:>6}")
    print(json.dumps({"benchmark": "loop_bench", "sandbox": args.sandbox, "evals": args.evals,
                      "cpus": os.cpu_count(), "results": rows}))


if __name__ == "__main__":
    main()
