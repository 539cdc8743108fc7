"""Is evolving attempts better than sampling N times at the same cost? One attempt vs best-of-N vs evolution.

    python benchmarks/evoscale_bench.py [--model local/smollm2] [--suite mini] [--tasks 4 | --task-ids a,b]
        [--attempts 3 --generations 2] [--tokens-per-task N] [--backend auto] [--agent PATH] [--judge]

Three arms run the same agent (default: the seed agent) on the same tasks through hgm's one
evaluation path, each graded only on its selected patch:
- `single`: one attempt (what `hgm eval` does by default);
- `best-of-N`: N = attempts x generations independent attempts (first-generation strategy
  variants), one selected without the hidden tests;
- `evolution`: attempts x generations, later generations guided by revise, recombine and
  refine operators.
The two multi-attempt arms get the same hard token budget per task (`--tokens-per-task`;
default: N times the single arm's median tokens per task), enforced by the gateway on every
call and checked before every attempt. Per arm: resolve rate with a 95% Wilson interval,
tokens and dollars, attempts run; per pair of arms: tasks solved by one and not the other,
with an exact two-sided McNemar p-value. Runs with any `--model` the gateway knows (real
providers: give their key in the environment). Prints a table and, as its last line, one
JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from math import comb
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archive.stats import wilson_interval  # noqa: E402
from evaluators.suite import load_suite  # noqa: E402
from sandbox import get_backend  # noqa: E402

from hgm.config import build_config  # noqa: E402
from hgm.evaluation.attempts import AttemptsPolicy  # noqa: E402
from hgm.evaluation.evaluate import EvalSetup, SolveLimits, evaluate  # noqa: E402
from hgm.gateway import start_gateway  # noqa: E402
from hgm.gateway.chat import gateway_chat  # noqa: E402
from hgm.gateway.config import run_gateway_config  # noqa: E402
from hgm.gateway.costs import CostBook  # noqa: E402


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value from the discordant pairs (1.0 when there are none)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(0, min(only_a, only_b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def run_arm(name: str, policy: AttemptsPolicy, args, suite, tasks, backend, agent_dir: Path, out: Path,
            limits: SolveLimits, model_limits) -> dict:
    """Evaluate every task under `policy` with its own gateway (its token cap per evaluation)."""
    costs = CostBook()
    gw = run_gateway_config(args.model, api_base=args.api_base, attempt_usd=model_limits.attempt_usd,
                            evaluation_tokens=policy.max_tokens)
    rows = []
    with start_gateway(gw, costs) as gateway:
        setup = EvalSetup(backend=backend, suite=suite, access=gateway.access, costs=costs, limits=limits,
                          root=out, attempts=policy,
                          chat=gateway_chat(gateway.url, gateway.config.alias, limits.solve_timeout_s))
        for task in tasks:
            t0 = time.monotonic()
            record = evaluate(setup, 0, agent_dir, task, out / name / task.instance_id,
                              {"job": f"{name}:{task.instance_id}", "task": task.instance_id, "purpose": "solve"})
            selected = next((a for a in record.attempts if a.selected), None)
            rows.append({"task": task.instance_id, "outcome": record.status, "tokens": record.tokens,
                         "usd": record.cost_usd, "attempts": len(record.attempts) or 1,
                         "selected": selected.index if selected else 1,
                         "selected_operator": selected.operator if selected else "sample",
                         "seconds": round(time.monotonic() - t0, 1), "detail": record.detail[:200]})
            print(f"  {name:>10} {task.instance_id:<28} {record.status:<13} {record.tokens:>7} tokens "
                  f"{rows[-1]['attempts']:>2} attempts {rows[-1]['seconds']:>6.0f} s", flush=True)
    measured = [r for r in rows if r["outcome"] not in ("error_infra", "abandoned")]
    resolved = sum(r["outcome"] == "resolved" for r in measured)
    low, high = wilson_interval(resolved, len(measured))
    return {"policy": {"attempts": policy.attempts, "generations": policy.generations, "max_tokens": policy.max_tokens,
                       "judge": policy.judge},
            "tasks": rows, "measured": len(measured), "resolved": resolved,
            "resolve_rate": resolved / len(measured) if measured else None, "ci95": [low, high],
            "tokens": sum(r["tokens"] for r in rows), "usd": round(sum(r["usd"] for r in rows), 6),
            "attempts": sum(r["attempts"] for r in rows), "infra_errors": len(rows) - len(measured)}


def paired(arms: dict) -> list[dict]:
    names = list(arms)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            sa = {r["task"] for r in arms[a]["tasks"] if r["outcome"] == "resolved"}
            sb = {r["task"] for r in arms[b]["tasks"] if r["outcome"] == "resolved"}
            out.append({"a": a, "b": b, "only_a": sorted(sa - sb), "only_b": sorted(sb - sa), "both": len(sa & sb),
                        "mcnemar_p": round(mcnemar_p(len(sa - sb), len(sb - sa)), 4)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--api-base", default=None)
    parser.add_argument("--suite", default="mini")
    parser.add_argument("--tasks", type=int, default=4, help="the first N tasks of the suite")
    parser.add_argument("--task-ids", default="", help="comma-separated task ids (instead of --tasks)")
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--tokens-per-task", type=int, default=0, help="budget of each multi-attempt arm (0: N x single)")
    parser.add_argument("--judge", action="store_true", help="the evolution arm also uses the listwise judge")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--agent", default=str(ROOT), help="folder holding agent/ (default: the seed agent)")
    parser.add_argument("--out", default="", help="keep artifacts here (default: a temp dir)")
    args = parser.parse_args()

    config = build_config(overrides={"model": args.model})
    model_limits = config.agent
    limits = SolveLimits(max_steps=model_limits.solve_step_limit, solve_timeout_s=model_limits.solve_timeout_s,
                         test_timeout_s=model_limits.test_timeout_s)
    suite = load_suite(args.suite)
    backend = get_backend(args.backend)
    suite.use_backend(backend)
    tasks = suite.select(args.task_ids.split(",")) if args.task_ids else suite.tasks()[: args.tasks]
    out = Path(args.out or tempfile.mkdtemp(prefix="hgm-evoscale-")).resolve()
    agent_dir = out / "agent-src"
    shutil.copytree(Path(args.agent) / "agent", agent_dir / "agent", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    dirs_exist_ok=True)
    n = args.attempts * args.generations
    chars = config.evaluation.summary_chars(args.model)
    print(f"evoscale: {args.model} on {len(tasks)} {suite.name} tasks, {backend.name} backend, "
          f"1 vs best-of-{n} vs {args.attempts} x {args.generations}; artifacts in {out}", flush=True)

    arms: dict[str, dict] = {}
    started = time.monotonic()
    arms["single"] = run_arm("single", AttemptsPolicy(), args, suite, tasks, backend, agent_dir, out, limits, model_limits)
    per_task = [r["tokens"] for r in arms["single"]["tasks"] if r["tokens"]]
    budget = args.tokens_per_task or max(1000, int(n * statistics.median(per_task or [1000])))
    arms[f"best-of-{n}"] = run_arm(f"best-of-{n}", AttemptsPolicy(n, 1, max_tokens=budget, summary_chars=chars),
                                   args, suite, tasks, backend, agent_dir, out, limits, model_limits)
    arms["evolution"] = run_arm("evolution", AttemptsPolicy(args.attempts, args.generations, max_tokens=budget,
                                                            judge=args.judge, summary_chars=chars),
                                args, suite, tasks, backend, agent_dir, out, limits, model_limits)
    figures = {"model": args.model, "suite": suite.name, "backend": backend.name, "tasks": [t.instance_id for t in tasks],
               "tokens_per_task_budget": budget, "arms": arms, "paired": paired(arms),
               "wall_s": round(time.monotonic() - started, 1)}

    print(f"\n{'arm':>12} {'resolved':>9} {'rate [95% CI]':>22} {'tokens':>9} {'tok/task':>9} {'usd':>8} {'attempts':>9}")
    for name, arm in arms.items():
        rate = "-" if arm["resolve_rate"] is None else f"{arm['resolve_rate']:.2f} [{arm['ci95'][0]:.2f}, {arm['ci95'][1]:.2f}]"
        per = arm["tokens"] / max(1, len(arm["tasks"]))
        print(f"{name:>12} {arm['resolved']:>4}/{arm['measured']:<4} {rate:>22} {arm['tokens']:>9} {per:>9.0f} "
              f"{arm['usd']:>8.4f} {arm['attempts']:>9}")
    print(f"token budget of each multi-attempt arm: {budget} per task")
    for p in figures["paired"]:
        print(f"{p['a']} vs {p['b']}: solved only by {p['a']}: {p['only_a'] or '-'}; only by {p['b']}: "
              f"{p['only_b'] or '-'}; by both: {p['both']}; McNemar p = {p['mcnemar_p']}")
    print(json.dumps(figures, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
