"""Archive benchmark: open + tree build on 10,000 nodes / 100,000 evaluations, and insert rate.

Run from the repository root:  python benchmarks/archive_bench.py

1. Builds a run with N_NODES nodes (a random tree) and N_EVALS evaluations. Node rows go
   in through `Run.import_nodes`, which reuses the parent's commit instead of making a git
   commit per node (the git store is not what is measured here; one `add_node` costs a few
   git subprocesses, about 30 ms). Evaluations go in through `Run.record_evals` batches.
2. Times a read-only `Run.open` + `Run.tree()` (what `hgm show` and a resume do), and the
   same for a writer (lock + orphan-branch check). Target: under 1 s.
3. Times `Run.record_eval`, one transaction per evaluation, as the search loop does.
   Target: at least 2,000 per second. hgm.db runs in WAL mode with synchronous=NORMAL: a
   commit is durable once in the OS page cache, so a killed process loses nothing
   committed (see tests/archive/test_crash.py); only a power cut may drop the last
   commits, which a resume re-queues like any evaluation in flight.

Prints a table and, as the last line, one JSON object with the figures.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archive import EvalRecord, Run  # noqa: E402
from hgm.search.report import best_in_tree  # noqa: E402

N_NODES = 10_000
N_EVALS = 100_000
N_SINGLE = 5_000  # one-transaction-per-evaluation inserts timed
REPEATS = 5
OPEN_TARGET_S = 1.0
INSERT_TARGET_PER_S = 2_000
STATUSES = ("resolved", "unresolved", "unresolved", "empty_patch", "timeout", "patch_failed")


def random_parent(i: int, rng: random.Random) -> int:
    """The parent of the (i+1)-th node: one of the 200 nodes made just before it."""
    return rng.randrange(max(1, i - 200), i + 1) if i else 0


def build(run_dir: Path, rng: random.Random, parent_of=random_parent, config: dict | None = None,
          operator: str = "bench") -> float:
    """Create the big run (N_NODES nodes shaped by `parent_of`, N_EVALS evaluations); return seconds spent."""
    seed = run_dir.parent / "seed"
    (seed / "agent").mkdir(parents=True)
    (seed / "agent" / "__init__.py").write_text("")
    started = time.perf_counter()
    with Run.create(run_dir, config or {"bench": True}, seed, hgm_version="bench") as run:
        parents = [parent_of(i, rng) for i in range(N_NODES - 1)]
        run.import_nodes((p, operator) for p in parents)
        per_node = N_EVALS // N_NODES
        batch: list[EvalRecord] = []
        for node in range(N_NODES):
            rate = rng.random()
            for k in range(per_node):
                status = "resolved" if rng.random() < rate else rng.choice(STATUSES[1:])
                batch.append(EvalRecord(node, f"task-{k}", status, started=0.0, finished=1.0,
                                        agent_s=0.7, grade_s=0.3, total_s=1.0, tokens=1000, cost_usd=0.001))
            if len(batch) >= 10_000:
                run.record_evals(batch)
                batch = []
        if batch:
            run.record_evals(batch)
    return time.perf_counter() - started


def time_open(run_dir: Path, writable: bool) -> tuple[float, int, int]:
    started = time.perf_counter()
    with Run.open(run_dir, writable=writable) as run:
        tree = run.tree()
    elapsed = time.perf_counter() - started
    return elapsed, len(tree), tree.n_evals


def time_inserts(run_dir: Path, round_no: int) -> float:
    with Run.open(run_dir, writable=True) as run:
        records = [EvalRecord(i % N_NODES, f"extra-{round_no}-{i}", STATUSES[i % len(STATUSES)], started=0.0, finished=1.0,
                              agent_s=0.7, grade_s=0.3, total_s=1.0, tokens=1000, cost_usd=0.001,
                              trajectory_path=f"traj/{i}.jsonl", log_path=f"logs/{i}.log")
                   for i in range(N_SINGLE)]
        started = time.perf_counter()
        for record in records:
            run.record_eval(record)
        elapsed = time.perf_counter() - started
    return N_SINGLE / elapsed


def main() -> None:
    rng = random.Random(2510_21614)
    with tempfile.TemporaryDirectory(prefix="hgm-archive-bench-") as tmp:
        run_dir = Path(tmp) / "run"
        build_s = build(run_dir, rng)
        db_mb = (run_dir / "hgm.db").stat().st_size / 2**20
        reads = [time_open(run_dir, writable=False) for _ in range(REPEATS)]
        writes = [time_open(run_dir, writable=True) for _ in range(REPEATS)]
        nodes, evals = reads[0][1], reads[0][2]
        with Run.open(run_dir) as run:
            tree = run.tree()
        started = time.perf_counter()
        best_in_tree(tree)
        best_s = time.perf_counter() - started
        rates = [time_inserts(run_dir, r) for r in range(3)]

    open_ro = statistics.median(t for t, _, _ in reads)
    open_rw = statistics.median(t for t, _, _ in writes)
    rate = statistics.median(rates)
    rows = [
        ("nodes / measured evaluations", f"{nodes:,} / {evals:,}", ""),
        ("build (bulk import)", f"{build_s:.2f} s", f"hgm.db {db_mb:.1f} MiB"),
        ("open read-only + build tree", f"{open_ro * 1000:.0f} ms", f"target < {OPEN_TARGET_S * 1000:.0f} ms"),
        ("open for writing + build tree", f"{open_rw * 1000:.0f} ms", f"target < {OPEN_TARGET_S * 1000:.0f} ms"),
        ("final choice over the tree (lineage rule)", f"{best_s * 1000:.0f} ms", ""),
        ("record_eval, 1 transaction each", f"{rate:,.0f} /s", f"target >= {INSERT_TARGET_PER_S:,} /s"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>16}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>16}  {note}")
    figures = {
        "nodes": nodes,
        "evaluations": evals,
        "build_s": round(build_s, 3),
        "db_mib": round(db_mb, 2),
        "open_tree_readonly_s": round(open_ro, 4),
        "open_tree_writable_s": round(open_rw, 4),
        "final_choice_s": round(best_s, 4),
        "eval_inserts_per_s": round(rate),
        "open_target_met": open_ro < OPEN_TARGET_S and open_rw < OPEN_TARGET_S,
        "insert_target_met": rate >= INSERT_TARGET_PER_S,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
