"""How long the admission gate takes on children of the seed agent.

    python benchmarks/gate_bench.py [--rounds N] [--backends local,docker]

Static: `vet` without a sandbox (file comparison, protected paths, size, capabilities by
ast) on a prompt tweak and on a new helper module with tests, N rounds (median).
Sandboxed: one full `vet` per backend for each child (the static checks plus the suite runs
in a fresh no-network sandbox: three runs when the tests are unchanged, four otherwise).
Targets: static < 1 s; sandboxed well under the agent's test timeout (300 s).
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hgm.evolve.gate import TestSandbox, vet  # noqa: E402
from tests.hgm.evolve.children import BENIGN, copy_seed, make_child  # noqa: E402

CHILDREN = ("prompt_tweak", "helper_with_tests")


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="local,docker")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    from evaluators.grading import python_for
    from sandbox import get_backend

    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="hgm-gate-bench-") as tmp:
        parent = copy_seed(Path(tmp) / "parent")
        for name in CHILDREN:
            child = make_child(parent, Path(tmp) / name, BENIGN[name])
            static = [timed(lambda: vet(parent, child))[0] for _ in range(args.rounds)]
            figures[name] = {"static_median_s": round(statistics.median(static), 3)}
            for backend_name in args.backends.split(","):
                try:
                    backend = get_backend(backend_name)  # type: ignore[arg-type]
                except Exception as exc:  # noqa: BLE001 - a missing engine is reported, not fatal
                    figures[name][f"{backend_name}_s"] = None
                    print(f"{backend_name}: unavailable ({exc})", file=sys.stderr)
                    continue
                sandbox = TestSandbox(backend, python=python_for(backend))
                seconds, verdict = timed(lambda: vet(parent, child, sandbox=sandbox))
                assert verdict.accepted, verdict.reason  # a benign child
                figures[name][f"{backend_name}_s"] = round(seconds, 2)
                figures[name][f"{backend_name}_tests_s"] = round(verdict.test_s, 2)
    print(f"{'child':<20} {'static (median)':>16} " + " ".join(f"{b + ' full':>12}" for b in args.backends.split(",")))
    for name, row in figures.items():
        cells = " ".join(f"{row.get(b + '_s') or '-':>12}" for b in args.backends.split(","))
        print(f"{name:<20} {row['static_median_s']:>15.3f}s {cells}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
