"""Replay: the tree grows from the root item by item and ends as the live view."""

from __future__ import annotations

from pathlib import Path

from hgm.tui.data import RunData
from hgm.tui.replay import KIND, Replay


def test_replay_grows_from_the_root_and_ends_as_now(demo_run: Path) -> None:
    data = RunData.open(demo_run)
    try:
        live = data.snapshot()
        replay = Replay(data.timeline(), data.config, data.header())
    finally:
        data.close()
    start = replay.snapshot()
    assert list(start.nodes) == [0] and start.nodes[0].evals == 0
    assert start.header.status == "replay" and start.header.note.startswith(f"{replay.start}/{replay.end} ")

    sizes = []
    while replay.position < replay.end:
        replay.step(1)
        sizes.append(len(replay.tree.nodes))
    assert sizes == sorted(sizes) and sizes[-1] == len(live.nodes)
    end = replay.snapshot()
    for node_id, row in live.nodes.items():
        mine = end.nodes[node_id]
        assert (mine.evals, mine.successes, mine.clade_evals, mine.score, mine.failed_expansions) == (
            row.evals, row.successes, row.clade_evals, row.score, row.failed_expansions)
    assert end.header.shipped == live.header.shipped

    middle = next(i for i, item in enumerate(replay.items) if item[KIND] == "node" and item[2] == 5) + 1
    replay.seek(middle)
    assert max(replay.tree.nodes) == 5 and "node 5 added" in replay.describe()
    counts = {n: len(node.evals) for n, node in replay.tree.nodes.items()}
    replay.step(7)
    replay.step(-7)  # backwards undoes exactly what forwards did
    assert {n: len(node.evals) for n, node in replay.tree.nodes.items()} == counts
    replay.seek(0)
    assert replay.position == replay.start and list(replay.tree.nodes) == [0]
    replay.seek(10**9)
    assert replay.position == replay.end
