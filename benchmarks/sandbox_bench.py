"""Sandbox latency and throughput per backend.

    python benchmarks/sandbox_bench.py [--rounds N] [--backends docker,local]

Latency: open + exec("true") + close, sequentially, N rounds (median, p95).
Throughput: sessions (open + exec("true") + close) completed per second with 1, 2 and 4
threads working in parallel. Also the time of a bare `docker run --rm IMAGE true` for
comparison. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox import SandboxSpec, get_backend  # noqa: E402
from sandbox.api import BASE_IMAGE  # noqa: E402

SPEC = SandboxSpec(labels={"hgm.run": "bench", "hgm.purpose": "bench"})


def one_session(backend) -> float:
    started = time.perf_counter()
    with backend.open(SPEC) as box:
        res = box.exec("true", timeout=30)
        if not res.ok:
            raise RuntimeError(f"exec failed: {res}")
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def latency(backend, rounds: int) -> dict:
    one_session(backend)  # warm-up (image cache, client connection)
    times = [one_session(backend) for _ in range(rounds)]
    return {"median_s": statistics.median(times), "p95_s": percentile(times, 0.95), "rounds": rounds}


def throughput(backend, workers: int, sessions: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: one_session(backend), range(sessions)))
    return sessions / (time.perf_counter() - started)


def bare_docker_run(rounds: int) -> float | None:
    if shutil.which("docker") is None:
        return None
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(["docker", "run", "--rm", "--network", "none", BASE_IMAGE, "true"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--backends", default="docker,local")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    figures: dict = {}
    for name in args.backends.split(","):
        try:
            backend = get_backend(name)  # type: ignore[arg-type]
            one_session(backend)
        except Exception as exc:  # noqa: BLE001 - report and go on
            figures[name] = {"error": str(exc).splitlines()[0]}
            continue
        result = latency(backend, args.rounds)
        sessions = max(8, args.rounds)
        result["throughput_per_s"] = {str(w): throughput(backend, w, sessions) for w in (1, 2, 4)}
        figures[name] = result
    if "docker" in figures and "error" not in figures["docker"]:
        figures["bare_docker_run_median_s"] = bare_docker_run(max(5, args.rounds // 2))

    print(f"{'backend':<8} {'median s':>9} {'p95 s':>7} {'sess/s x1':>10} {'x2':>7} {'x4':>7}")
    for name in args.backends.split(","):
        row = figures[name]
        if "error" in row:
            print(f"{name:<8} unavailable: {row['error']}")
            continue
        tp = row["throughput_per_s"]
        print(f"{name:<8} {row['median_s']:>9.3f} {row['p95_s']:>7.3f} {tp['1']:>10.2f} {tp['2']:>7.2f} {tp['4']:>7.2f}")
    if figures.get("bare_docker_run_median_s") is not None:
        print(f"bare `docker run --rm {BASE_IMAGE} true`: median {figures['bare_docker_run_median_s']:.3f} s")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
