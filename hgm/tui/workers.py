"""Background reads that never take the app down.

Archive reads run in worker threads so the UI stays responsive. They can fail (a run
deleted or damaged while shown, a disk error, the app closing mid-read): such a failure
becomes a notice on screen, never a crash or a traceback on exit.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from textual import work

from hgm.tui import fmt


def background(group: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run the decorated widget method in a thread worker (a newer call in `group` replaces an older one)."""

    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - shown to the user instead of ending the app
                try:
                    self.app.call_from_thread(self.notify, fmt.one_line(str(exc) or type(exc).__name__, 300),
                                              severity="error", timeout=8)
                except RuntimeError:
                    pass  # the app is closing: nobody to tell
                return None

        return work(thread=True, exclusive=True, group=group, exit_on_error=False)(guarded)

    return decorate
