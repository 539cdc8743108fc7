"""TUI benchmark: `hgm tui` on a 10,000-node / 100,000-evaluation run.

Run from the repository root:  python benchmarks/tui_bench.py

1. Builds a run with N_NODES versions (a random tree whose root has about a hundred
   children, like a long HGM search) and N_EVALS evaluations, through `Run.import_nodes`
   and `Run.record_evals` (no git commit per node: the git store is not measured here),
   plus a model call per evaluation.
2. Times, in Textual's headless pilot at 120x40:
   - first paint: from opening the run read-only to the screen showing the tree (root
     open, its children listed) and the root's Summary. Target: under 2 s.
   - expand root: collapse the root, then open it again (its children are made anew).
   - expand widest: open, for the first time, the version with the most children.
   - key press: CPU time of one cursor move, rendering included (mean of 100 `j`).
   - evaluations: from a cursor move to the Evaluations tab showing the new version's
     first page (a 0.12 s pause for the cursor to settle included).
   - follow refresh: a new snapshot after another connection committed (data layer only).
3. Takes the median of REPEATS runs of each.

Prints a table and, as the last line, one JSON object with the figures.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archive import EvalRecord, Run  # noqa: E402
from benchmarks import archive_bench  # noqa: E402
from hgm.tui.app import HgmTui  # noqa: E402
from hgm.tui.data import RunData  # noqa: E402

N_NODES = archive_bench.N_NODES  # 10,000
N_EVALS = archive_bench.N_EVALS  # 100,000
REPEATS = 3
SIZE = (120, 40)
FIRST_PAINT_TARGET_S = 2.0


def wide_parent(i: int, rng: random.Random) -> int:
    """About 1% of the versions are children of the root; the rest descend from recent ones."""
    return 0 if rng.random() < 0.01 or i < 5 else rng.randrange(max(1, i - 300), i + 1)


def build(run_dir: Path, rng: random.Random) -> float:
    """The big run (see benchmarks/archive_bench.py) plus a model call on every tenth version."""
    seconds = archive_bench.build(run_dir, rng, wide_parent, {"bench": True, "budget": {"evals": N_EVALS}}, "self_improve")
    started = time.perf_counter()
    with Run.open(run_dir, writable=True) as run:
        for node in range(0, N_NODES, 10):
            run.record_llm_call(purpose="solve", node_id=node, task_id="task-0", prompt_tokens=900,
                                completion_tokens=100, cost_usd=0.002, latency_s=1.5)
    return seconds + time.perf_counter() - started


async def settle(pilot, app) -> None:
    """Wait until Textual has handled every message, then render the screen once."""
    await pilot.pause()
    app.screen._compositor.render_strips()


async def measure_app(run_dir: Path) -> dict[str, float]:
    started = time.perf_counter()
    app = HgmTui(RunData.open(run_dir), follow=False)
    figures: dict[str, float] = {}
    async with app.run_test(size=SIZE) as pilot:
        screen = app.run_screen
        while screen is None or not screen.ready:
            await asyncio.sleep(0.005)
            screen = app.run_screen
        await settle(pilot, app)
        figures["first_paint_s"] = time.perf_counter() - started
        tree = screen.agent_tree
        assert tree.root.is_expanded and tree.root.children, "the root should open with its children"
        figures["root_children"] = len(tree.root.children)

        tree.move_cursor(tree.root)
        await pilot.press("h")
        await settle(pilot, app)
        t0 = time.perf_counter()
        screen.agent_tree.set_order(False)  # forget every loaded level: the root's children are made anew
        await pilot.press("l")
        await settle(pilot, app)
        figures["expand_root_s"] = time.perf_counter() - t0

        snap = screen.snapshot
        widest = max((n for n in snap.nodes.values() if n.id != snap.root_id), key=lambda n: len(n.children))
        tree.reveal(widest.id)
        await settle(pilot, app)
        t0 = time.perf_counter()
        await pilot.press("l")
        await settle(pilot, app)
        figures["expand_widest_s"] = time.perf_counter() - t0
        figures["widest_children"] = len(widest.children)

        cpu0 = time.process_time()
        for _ in range(100):
            await pilot.press("j")
        await settle(pilot, app)
        figures["key_press_cpu_ms"] = (time.process_time() - cpu0) * 1000 / 100

        await pilot.press("3")
        await pilot.pause(0.3)
        table = screen.query_one("#evals-table")
        t0 = time.perf_counter()
        await pilot.press("j")
        while table.node_id != tree.cursor_id or not table.items:
            await asyncio.sleep(0.002)
        await settle(pilot, app)
        figures["evaluations_page_s"] = time.perf_counter() - t0
    return figures


def measure_refresh(run_dir: Path, round_no: int) -> float:
    data = RunData.open(run_dir)
    try:
        data.changed()
        with Run.open(run_dir, writable=True) as writer:
            writer.record_eval(EvalRecord(5, f"task-extra-{round_no}", "resolved"))
        t0 = time.perf_counter()
        assert data.changed()
        data.snapshot()
        return time.perf_counter() - t0
    finally:
        data.close()


def main() -> None:
    rng = random.Random(13)
    with tempfile.TemporaryDirectory(prefix="hgm-tui-bench-") as tmp:
        run_dir = Path(tmp) / "runs" / "big"
        build_s = build(run_dir, rng)
        rounds = [asyncio.run(measure_app(run_dir)) for _ in range(REPEATS)]
        refresh = statistics.median(measure_refresh(run_dir, i) for i in range(REPEATS))
    med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    rows = [
        ("build archive (once)", f"{build_s:.1f} s", ""),
        ("first paint", f"{med['first_paint_s']:.2f} s", f"target < {FIRST_PAINT_TARGET_S:.0f} s"),
        (f"expand root ({med['root_children']:.0f} children)", f"{med['expand_root_s'] * 1000:.0f} ms", ""),
        (f"expand widest ({med['widest_children']:.0f} children)", f"{med['expand_widest_s'] * 1000:.0f} ms", ""),
        ("cursor move (j), CPU", f"{med['key_press_cpu_ms']:.1f} ms", ""),
        ("move -> evaluations page shown", f"{med['evaluations_page_s'] * 1000:.0f} ms", ""),
        ("follow refresh (snapshot)", f"{refresh * 1000:.0f} ms", ""),
    ]
    print(f"hgm tui on {N_NODES:,} versions / {N_EVALS:,} evaluations, {SIZE[0]}x{SIZE[1]}, median of {REPEATS}")
    for name, value, note in rows:
        print(f"  {name:<36} {value:>10}  {note}")
    figures = {
        "nodes": N_NODES,
        "evaluations": N_EVALS,
        "first_paint_s": round(med["first_paint_s"], 3),
        "expand_root_s": round(med["expand_root_s"], 4),
        "root_children": int(med["root_children"]),
        "expand_widest_s": round(med["expand_widest_s"], 4),
        "widest_children": int(med["widest_children"]),
        "evaluations_page_s": round(med["evaluations_page_s"], 4),
        "key_press_cpu_ms": round(med["key_press_cpu_ms"], 2),
        "follow_refresh_s": round(refresh, 3),
        "first_paint_target_s": FIRST_PAINT_TARGET_S,
        "first_paint_ok": med["first_paint_s"] < FIRST_PAINT_TARGET_S,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
