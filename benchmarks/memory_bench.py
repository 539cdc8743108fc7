"""Repeated modifications per 100 expansions, with and without the lessons memory.

Each arm runs N expansions through the real `hgm.evolve.expand` (lesson, diagnosis by the
model through a real gateway, memory recall, distillation, the admission gate's static
checks, the archive) on a fresh run. Only the improve agent is a stand-in
(`tests/hgm/evolve/memory_world.ProposalImprover`): it implements each diagnosis literally,
so the same proposal always adds the same lines. Children are "measured" by a fixed world:
each strategy has a hidden effect that flips some of the parent's results, so comparisons
(helped / hurt) are distilled too. Both arms distil items; only the memory arm shows them
to the diagnosis (`memory.k`); the other has k = 0.

A modification repeats when an earlier expansion of the same arm made
  - the same diff hash (the gate's sha256 of the change; differs whenever the parent differs),
  - the same change (the same added lines, wherever applied), or
  - the same distilled strategy (exact words; and "near": word sets with Jaccard >= 0.6).

With the scripted model (default) the figures measure the MECHANISM, not a model: its
script proposes strategy S0 unless the prompt shows a memory item of some S_i, and then
proposes S_(i+1) for the highest i shown. Without memory it therefore repeats S0 every
time; with memory it repeats only when retrieval fails to show the latest relevant item.
With a real model (`--model local/smollm2`, grammar off so it may write JSON) the figures
are that model's behaviour on a few expansions.

Usage: python benchmarks/memory_bench.py [--model scripted|MODEL] [--expansions 100] [--k 4]
Prints a table and, as its last line, one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from archive import EvalRecord, Run  # noqa: E402
from archive.memory import STOPWORDS  # noqa: E402
from hgm.config import EvolveConfig, MemoryConfig  # noqa: E402
from hgm.evolve.expand import ExpandSetup, expand  # noqa: E402
from hgm.evolve.improve import ImproveLimits  # noqa: E402
from hgm.evolve.lessons import EvalView  # noqa: E402
from hgm.evolve.memory import PURPOSE, RunMemory  # noqa: E402
from hgm.gateway.chat import gateway_chat  # noqa: E402
from hgm.gateway import GatewayConfig, start_gateway  # noqa: E402
from hgm.gateway.redact import Redactor  # noqa: E402
from hgm.loop.session import seed_agent_tree  # noqa: E402
from tests.hgm.evolve.memory_world import REJECT, ProposalImprover, added_lines, code_line  # noqa: E402

TEMPLATES = (
    "Run the repository's tests before submitting and fix what fails",
    "Read the failing test names first and open the files they name",
    "Truncate long command outputs to their head and tail",
    "Check that the diff is non-empty before submitting",
    "Search the code with grep for the symbols in the issue before editing",
    "Reproduce the bug with a small script before changing the code",
    "Keep a short plan in the conversation and update it after each step",
    "Retry a failed model call once with a shorter context",
    "Summarise old steps when the conversation grows long",
    "Prefer small edits with sed over rewriting whole files",
)
ASPECTS = (
    "when the issue names a function", "on repositories with many modules", "after every edit",
    "before the first edit", "whenever a command times out", "if the test suite is slow",
    "for configuration parsing bugs", "for crashes that print a traceback", "when the model reply is malformed",
    "in improve mode as well", "within the first three steps", "unless the diff touches tests",
)
TASKS = {
    f"task-{i}": SimpleNamespace(instance_id=f"task-{i}", test_patch="", problem_statement=text)
    for i, text in enumerate((
        "Boolean values in the config file are parsed case-sensitively.",
        "The CLI crashes on an empty input file instead of printing nothing.",
        "Dates before 1970 are formatted with a negative year.",
        "The cache is never invalidated when the source file changes.",
        "Unicode file names are mangled when the archive is extracted.",
    ))
}


def strategy(i: int) -> str:
    """Strategy S_i: a marker the scripted model keys on, its words (a template and an aspect, no two alike),
    and every 7th is rejected by the gate."""
    aspect = ASPECTS[(i // len(TEMPLATES)) % len(ASPECTS)]
    text = f"[[S{i}]] {TEMPLATES[i % len(TEMPLATES)]} {aspect}"
    return f"{text} {REJECT}" if i % 7 == 3 else text


def effect(i: int) -> int:
    """The hidden effect of strategy S_i on the tasks its parent failed (+1), passed (-1), or none (0)."""
    return (1, 0, -1)[i % 3]


def diagnosis(proposal: str) -> str:
    return json.dumps({"log_summary": "-", "what_went_wrong": "-", "improvement_proposal": proposal,
                       "implementation_plan": "one small edit", "problem_description": f"Change the agent: {proposal}"})


def words(i: int) -> str:
    name = code_line(strategy(i)).replace(f" {REJECT}", "")
    return json.dumps({"title": f"[[S{i}]] {name}", "description": f"{name}.",
                       "strategy": f"{name}."})


def scripted_script(n_strategies: int) -> dict[str, Any]:
    """Diagnose: S0, or S_(i+1) for the highest S_i the prompt shows. Distil: the words of the S_i it is shown."""
    cases = [{"contains": f"[[S{i}]]", "reply": diagnosis(strategy(i + 1))} for i in reversed(range(n_strategies - 1))]
    distill = [{"contains": f"[[S{i}]]", "reply": words(i)} for i in range(n_strategies)]
    return {"diagnose": [{"reply": diagnosis(strategy(0)), "cases": cases}],
            "distill": [{"reply": words(0), "cases": distill}]}


def strategy_index(text: str) -> int | None:
    match = re.search(r"\[\[S(\d+)\]\]", text)
    return int(match.group(1)) if match else None


def child_results(parent: dict[str, int], i: int | None) -> dict[str, int]:
    """The world: the child's results on its parent's tasks under S_i's hidden effect."""
    results = dict(parent)
    change = effect(i) if i is not None else 0
    flipped = 0
    for task in sorted(results):
        if flipped < 2 and change > 0 and not results[task]:
            results[task], flipped = 1, flipped + 1
        elif flipped < 1 and change < 0 and results[task]:
            results[task], flipped = 0, flipped + 1
    return results


def word_set(text: str) -> frozenset[str]:
    """Content words (the FTS query's stopwords left out)."""
    return frozenset(w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in STOPWORDS)


def near(a: frozenset[str], b: frozenset[str]) -> bool:
    return bool(a | b) and len(a & b) / len(a | b) >= 0.6


def one_arm(model: str, expansions: int, k: int, seed: int, root: Path, script: Path | None) -> dict[str, Any]:
    """N expansions with memory shown (k > 0) or not (k = 0); what repeated."""
    tmp = root / f"arm-k{k}"
    tmp.mkdir()
    run = Run.create(tmp / "run", {"model": model}, seed_agent_tree(tmp / "seed"))
    spec = f"scripted:{script}" if script else model
    calls: list[Any] = []
    gateway = start_gateway(GatewayConfig(model=spec, grammar=False, seed=seed), calls.append)
    settings = MemoryConfig(k=k, words="model")  # ask even a local model (its grammar is off here)
    redact = Redactor.from_environ()
    evolve = EvolveConfig()
    memory = RunMemory(run, settings, model, gateway_chat(gateway.url, gateway.config.alias, 600), redact)
    improver = ProposalImprover()
    setup = ExpandSetup(backend=None, access=gateway.access, gateway_url=gateway.url,  # type: ignore[arg-type]
                        alias=gateway.config.alias, model=model, tasks=TASKS, evolve=evolve, limits=ImproveLimits(),
                        diagnose_timeout_s=600, redact=redact, memory=memory, improve=improver)
    rng = random.Random(seed)
    results: dict[int, dict[str, int]] = {0: {t: int(j == 0) for j, t in enumerate(TASKS)}}
    for task, ok in results[0].items():
        run.record_eval(EvalRecord(0, task, "resolved" if ok else "unresolved"))
    seen: dict[str, set] = {"diff": set(), "change": set(), "strategy": set()}
    near_seen: list[frozenset[str]] = []
    repeats = {"diff": 0, "change": 0, "strategy": 0, "strategy_near": 0}
    decided = {"accepted": 0, "rejected": 0, "other": 0}
    memory_chars: list[int] = []
    fell_back = 0
    started = time.monotonic()
    for n in range(expansions):
        parent = rng.choice(sorted(results))
        source = tmp / f"checkout-{n}"
        run.checkout(parent, source)
        evals = [EvalView(t, "resolved" if ok else "unresolved") for t, ok in results[parent].items()]
        tags = {"run": run.path.name, "job": f"bench-{n}", "node": parent}
        outcome = expand(setup, parent, source, evals, random.Random(f"{seed}-{n}"), tmp / f"exp-{n}", tags,
                         lambda: (0.0, 0))
        diag = json.loads(outcome.record.diagnosis)
        fell_back += bool(diag.get("fell_back"))
        proposal = improver.proposals[-1] if improver.proposals else ""
        if outcome.memory and outcome.memory.used:
            memory_chars.append(len(memory.render(outcome.memory.used)))
        child = None
        if outcome.record.status == "ok":
            child = run.add_node(parent, outcome.child_dir, "self_improve", outcome.record.lesson,
                                 outcome.record.diagnosis, expansion=outcome.record, admission=outcome.admission,
                                 memory=outcome.memory)
            decided["accepted"] += 1
        else:
            run.record_expansion(outcome.record, admission=outcome.admission, memory=outcome.memory)
            decided["rejected" if outcome.admission is not None else "other"] += 1
        produced = outcome.memory.produced if outcome.memory else ()
        diff = outcome.admission.diff_sha256 if outcome.admission is not None else ""
        made = added_lines(improver.diffs[-1]) if improver.diffs else ""
        change = hashlib.sha256(made.encode()).hexdigest() if made else ""
        strat = " ".join(produced[0].strategy.lower().split()) if produced else ""
        for key, value in (("diff", diff), ("change", change), ("strategy", strat)):
            if value and value in seen[key]:
                repeats[key] += 1
            if value:
                seen[key].add(value)
        if strat:
            ws = word_set(strat)
            repeats["strategy_near"] += any(near(ws, other) for other in near_seen)
            near_seen.append(ws)
        if child is not None:  # the world measures the child on its parent's tasks; the memory compares them
            results[child] = child_results(results[parent], strategy_index(proposal))
            for task, ok in results[child].items():
                run.record_eval(EvalRecord(child, task, "resolved" if ok else "unresolved"))
            memory.after_eval(child, lambda node: {**tags, "node": node})
    elapsed = time.monotonic() - started
    items = run.memory(run_key=run.key)
    gateway.close()
    run.close()
    per100 = 100.0 / max(1, expansions)
    return {
        "k": k,
        "expansions": expansions,
        "repeats": repeats,
        "repeats_per_100": {key: round(v * per100, 1) for key, v in repeats.items()},
        "distinct_proposals": len(set(improver.proposals)),
        "decided": decided,
        "items": len(items),
        "items_by_polarity": {p: sum(1 for i in items if i.polarity == p) for p in ("helped", "hurt", "unproven")},
        "items_fallback": sum(1 for i in items if i.written_by == "fallback"),
        "diagnoses_fell_back": fell_back,
        "distill_calls": sum(1 for c in calls if c.tags.get("purpose") == PURPOSE),
        "memory_chars_mean": round(sum(memory_chars) / len(memory_chars)) if memory_chars else 0,
        "memory_chars_max": max(memory_chars, default=0),
        "memory_budget": settings.prompt_budget(model),
        "seconds": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="scripted", help="scripted (a generated script) or a model spec, "
                        "e.g. local/smollm2")
    parser.add_argument("--expansions", type=int, default=100)
    parser.add_argument("--k", type=int, default=4, help="items shown to a diagnosis in the memory arm")
    parser.add_argument("--strategies", type=int, default=120, help="scripted model: strategies in its script")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scripted = args.model == "scripted"
    model = "scripted:bench" if scripted else args.model
    figures: dict[str, Any] = {"benchmark": "memory", "model": args.model, "seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="hgm-memory-bench-") as tmp:
        root = Path(tmp)
        script = None
        if scripted:
            script = root / "script.json"
            script.write_text(json.dumps(scripted_script(args.strategies)), encoding="utf-8")
        arms = {name: one_arm(model, args.expansions, k, args.seed, root, script)
                for name, k in (("without_memory", 0), ("with_memory", args.k))}
    figures.update(arms)
    print(f"memory benchmark: {args.expansions} expansions per arm, model {args.model}"
          + (" (scripted: measures the mechanism, not a model)" if scripted else ""))
    header = f"{'':34}{'without memory':>16}{'with memory (k=' + str(args.k) + ')':>22}"
    print(header)
    rows = [
        ("repeats / 100: same diff hash", lambda a: a["repeats_per_100"]["diff"]),
        ("repeats / 100: same change", lambda a: a["repeats_per_100"]["change"]),
        ("repeats / 100: same strategy", lambda a: a["repeats_per_100"]["strategy"]),
        ("repeats / 100: near strategy", lambda a: a["repeats_per_100"]["strategy_near"]),
        ("distinct proposals", lambda a: a["distinct_proposals"]),
        ("accepted / rejected / other", lambda a: "/".join(str(a["decided"][k]) for k in ("accepted", "rejected", "other"))),
        ("items helped / hurt / unproven", lambda a: "/".join(str(a["items_by_polarity"][p]) for p in ("helped", "hurt", "unproven"))),
        ("items in fallback words", lambda a: a["items_fallback"]),
        ("diagnoses that fell back", lambda a: a["diagnoses_fell_back"]),
        ("distill calls", lambda a: a["distill_calls"]),
        ("memory chars in prompt mean/max", lambda a: f"{a['memory_chars_mean']}/{a['memory_chars_max']} of {a['memory_budget']}"),
        ("seconds", lambda a: a["seconds"]),
    ]
    for label, get in rows:
        print(f"{label:34}{str(get(arms['without_memory'])):>16}{str(get(arms['with_memory'])):>22}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
