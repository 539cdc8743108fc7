"""TrackingBackend: abandoning work closes every open sandbox and opens no more."""

from __future__ import annotations

from sandbox.tracking import TrackingBackend


def test_tracking_backend_closes_everything_and_refuses_new_sandboxes() -> None:
    closed = []

    class Session:
        def __init__(self, n):
            self.n = n

        def close(self):
            closed.append(self.n)

        def exec(self, *a, **k):
            return "ran"

    class Inner:
        name = "fake"
        count = 0

        def open(self, spec):
            Inner.count += 1
            return Session(Inner.count)

    backend = TrackingBackend(Inner())
    with backend.open(None) as s1:
        assert s1.exec("x") == "ran"
    backend.open(None)
    backend.open(None)
    backend.close_all()
    assert sorted(closed) == [1, 2, 3]
    try:
        backend.open(None)
    except Exception as exc:  # noqa: BLE001
        assert "abandoned" in str(exc)
    else:
        raise AssertionError("a cancelled backend opened a sandbox")
