"""The live display of `hgm run`."""

from __future__ import annotations


def test_live_display_renders_progress() -> None:
    import io

    from rich.console import Console

    from hgm.cli.display import LiveDisplay, _render, best_line
    from hgm.loop.executor import Progress
    from hgm.search.state import SearchState

    state = SearchState(("a", "b", "c"))
    state.add_node(0, None)
    state.add_node(1, 0)
    state.record_eval(0, "a", False, in_flight=False)
    state.record_eval(1, "a", True, in_flight=False)
    state.record_eval(1, "b", True, in_flight=False)
    view = state.view()
    assert best_line(view, "best-belief", 0.05).startswith("node 1: 2/2 resolved")
    assert best_line(None, "lineage", 0.05) == "-"
    progress = Progress(3, 1, 10, 2, 1, 0, 0, 0.0123, 4567, 12.0, [("w0", "eval node 1 on c", 3.0)], "interrupted", view)
    console = Console(file=io.StringIO(), width=120)
    console.print(_render(progress, best_line(view, "best-belief", 0.05)))
    text = console.file.getvalue()
    assert "3 done + 1 running / budget 10" in text and "$0.0123" in text and "Ctrl-C again" in text
    plain = LiveDisplay("lineage", 0.05, enabled=False)
    plain(progress)  # plain lines on stderr; must not raise
