"""Bounded output capture: keep the head and the tail of a stream, drop the middle."""

from __future__ import annotations


class HeadTailBuffer:
    """Collects bytes up to `limit`: the first half and the last half are kept.

    Memory stays O(limit) however much is written, so a 100 MB flood costs nothing
    but the time to read it.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(0, int(limit))
        self._head_cap = self.limit // 2
        self._tail_cap = self.limit - self._head_cap
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def write(self, data: bytes) -> None:
        """Append a chunk."""
        if not data:
            return
        self.total += len(data)
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data or self._tail_cap == 0:
            return
        if len(data) >= self._tail_cap:
            self._tail[:] = data[-self._tail_cap :]
        else:
            self._tail += data
            excess = len(self._tail) - self._tail_cap
            if excess > 0:
                del self._tail[:excess]

    @property
    def dropped(self) -> int:
        """How many bytes were written but not kept."""
        return self.total - len(self._head) - len(self._tail)

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def text(self) -> str:
        """The kept bytes as text, with a marker where the middle was dropped."""
        if not self.truncated:
            return (bytes(self._head) + bytes(self._tail)).decode("utf-8", errors="replace")
        marker = f"\n[... {self.dropped} bytes of output dropped by the hgm sandbox ...]\n"
        return (
            bytes(self._head).decode("utf-8", errors="replace")
            + marker
            + bytes(self._tail).decode("utf-8", errors="replace")
        )
