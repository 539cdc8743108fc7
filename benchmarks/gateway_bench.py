"""Gateway overhead and local-model speed.

1. Added latency per call: a scripted backend (answers in microseconds) behind the gateway,
   called over the unix socket the way the seed agent calls it (a new connection per call),
   and over a kept-alive connection and loopback TCP for comparison. "Added" = client round
   trip minus the time spent inside the backend.
2. Local model: tokens per second of `local/smollm2` through the gateway, generating up to
   64 tokens a few times, with and without the action-format grammar.

Run from the repository root: `python benchmarks/gateway_bench.py [--calls N] [--skip-local]`.
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hgm.gateway import Completion, CompletionParams, GatewayConfig, Message, start_gateway  # noqa: E402
from hgm.gateway.backends.scripted import ScriptedBackend  # noqa: E402
from hgm.gateway.client import UnixHTTPConnection, chat  # noqa: E402

REPLY = "THOUGHT: I look around.\n\n```bash\nls -la\n```"
MESSAGES = [
    {"role": "system", "content": "You are a careful software engineer. " * 40},
    {"role": "user", "content": "Fix the failing test in calc.py. " * 20},
]
LOCAL_PROMPT = [
    {"role": "system", "content": "You are a coding agent. Reply with a short thought and one ```bash block."},
    {"role": "user", "content": "The test test_add in test_calc.py fails. Find and fix the bug in calc.py."},
]


class TimedBackend:
    """Wraps a backend and remembers how long each call spent inside it."""

    def __init__(self, inner: Any) -> None:
        self.name, self.inner = inner.name, inner
        self.seconds: list[float] = []
        self._lock = threading.Lock()

    def complete(self, messages: Sequence[Message], params: CompletionParams) -> Completion:
        started = time.perf_counter()
        result = self.inner.complete(messages, params)
        with self._lock:
            self.seconds.append(time.perf_counter() - started)
        return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure_overhead(calls: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.json"
        script.write_text(json.dumps([REPLY] * (calls * 3 + 30)))
        backend = TimedBackend(ScriptedBackend(script))
        config = GatewayConfig(model=f"scripted:{script}", tcp_port=0)
        results: dict[str, dict[str, float]] = {}
        with start_gateway(config, lambda record: None, backend=backend) as gateway:
            for _ in range(10):  # warm-up: imports, first thread
                chat(gateway.url, MESSAGES)
            keep_alive = UnixHTTPConnection(gateway.url)
            modes = {
                "unix, new connection": lambda: chat(gateway.url, MESSAGES),
                "unix, keep-alive": lambda: chat(gateway.url, MESSAGES, connection=keep_alive),
                "tcp, new connection": lambda: chat(gateway.tcp_url, MESSAGES),
            }
            for name, call in modes.items():
                backend.seconds.clear()
                round_trips = []
                for _ in range(calls):
                    started = time.perf_counter()
                    status, _ = call()
                    round_trips.append(time.perf_counter() - started)
                    assert status == 200
                added = [(rt - inside) * 1000 for rt, inside in zip(round_trips, backend.seconds)]
                results[name] = {
                    "median_ms": statistics.median(added),
                    "p95_ms": percentile(added, 0.95),
                    "calls_per_s": calls / sum(round_trips),
                }
            keep_alive.close()
    return results


def measure_local(repeats: int, max_tokens: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for label, grammar in (("no grammar", False), ("grammar", True)):
        config = GatewayConfig(model="local/smollm2", n_ctx=2048, grammar=grammar, temperature=0.8)
        load_started = time.perf_counter()
        with start_gateway(config) as gateway:
            load_s = time.perf_counter() - load_started
            chat(gateway.url, LOCAL_PROMPT, max_tokens=8)  # warm-up: prompt cache, grammar build
            tokens, seconds = 0, 0.0
            for seed in range(repeats):
                started = time.perf_counter()
                status, body = chat(gateway.url, LOCAL_PROMPT, max_tokens=max_tokens, seed=seed)
                seconds += time.perf_counter() - started
                assert status == 200, body
                tokens += body["usage"]["completion_tokens"]
        results[label] = {
            "tokens_per_s": tokens / seconds,
            "mean_tokens": tokens / repeats,
            "mean_call_s": seconds / repeats,
            "load_s": load_s,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per transport for the overhead figures")
    parser.add_argument("--repeats", type=int, default=3, help="local-model generations per setting")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per local generation")
    parser.add_argument("--skip-local", action="store_true", help="skip the local-model figures")
    args = parser.parse_args()

    overhead = measure_overhead(args.calls)
    print(f"Gateway added latency per call (scripted backend, {args.calls} calls each)")
    print(f"{'transport':<24}{'median ms':>11}{'p95 ms':>9}{'calls/s':>10}")
    for name, row in overhead.items():
        print(f"{name:<24}{row['median_ms']:>11.2f}{row['p95_ms']:>9.2f}{row['calls_per_s']:>10.0f}")
    figures: dict[str, Any] = {
        "added_latency_median_ms": round(overhead["unix, new connection"]["median_ms"], 3),
        "added_latency_p95_ms": round(overhead["unix, new connection"]["p95_ms"], 3),
        "keepalive_median_ms": round(overhead["unix, keep-alive"]["median_ms"], 3),
        "tcp_median_ms": round(overhead["tcp, new connection"]["median_ms"], 3),
        "target_median_ms": 5.0,
    }
    if not args.skip_local:
        try:
            local = measure_local(args.repeats, args.max_tokens)
        except ValueError as exc:  # the `local` extra is missing
            print(f"\nlocal model skipped: {exc}")
        else:
            print(f"\nLocal model local/smollm2 ({args.repeats} generations of up to {args.max_tokens} tokens)")
            print(f"{'setting':<14}{'tokens/s':>10}{'tokens':>8}{'s/call':>8}{'load s':>8}")
            for name, row in local.items():
                print(
                    f"{name:<14}{row['tokens_per_s']:>10.1f}{row['mean_tokens']:>8.1f}"
                    f"{row['mean_call_s']:>8.2f}{row['load_s']:>8.2f}"
                )
            figures["local_tokens_per_s"] = round(local["no grammar"]["tokens_per_s"], 2)
            figures["local_grammar_tokens_per_s"] = round(local["grammar"]["tokens_per_s"], 2)
            figures["local_load_s"] = round(local["no grammar"]["load_s"], 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
