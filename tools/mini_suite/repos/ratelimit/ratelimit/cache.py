"""A least-recently-used cache with optional time-to-live."""

import time
from collections import OrderedDict

_MISSING = object()


def make_key(args, kwargs):
    """A hashable key for a call: keyword order does not matter."""
    return (tuple(args), tuple(sorted(kwargs.items())))


class LRUCache:
    """At most ``maxsize`` entries; reading or writing an entry makes it most recent.

    With ``ttl`` (seconds), entries expire that long after they were last set.
    """

    def __init__(self, maxsize=128, ttl=None, clock=time.monotonic):
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.ttl = ttl
        self.clock = clock
        self.hits = 0
        self.misses = 0
        self._data = OrderedDict()  # key -> (value, expires_at or None)

    def _expired(self, key):
        expires = self._data[key][1]
        return expires is not None and self.clock() >= expires

    def _purge(self):
        for key in [k for k in self._data if self._expired(k)]:
            del self._data[key]

    def get(self, key, default=None):
        if key in self._data and not self._expired(key):
            self._data.move_to_end(key)
            self.hits += 1
            return self._data[key][0]
        self._data.pop(key, None)
        self.misses += 1
        return default

    def set(self, key, value):
        expires = None if self.ttl is None else self.clock() + self.ttl
        self._data[key] = (value, expires)
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def pop(self, key, default=_MISSING):
        if key in self._data:
            expired = self._expired(key)
            value = self._data.pop(key)[0]
            if not expired:
                return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def resize(self, maxsize):
        """Change the size limit, evicting least recently used entries if needed."""
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        while len(self._data) > maxsize:
            self._data.popitem(last=False)

    def __contains__(self, key):
        return key in self._data and not self._expired(key)

    def __len__(self):
        self._purge()
        return len(self._data)

    def keys(self):
        """Live keys, least recently used first."""
        self._purge()
        return list(self._data)

    def clear(self):
        self._data.clear()
