"""A token-bucket rate limiter."""

import time


class TokenBucket:
    """Allows bursts of up to ``capacity`` and ``rate`` tokens per second on average.

    The bucket starts full.
    """

    def __init__(self, rate, capacity, clock=time.monotonic):
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = float(rate)
        self.capacity = float(capacity)
        self.clock = clock
        self._tokens = float(capacity)
        self._updated = clock()

    def _refill(self):
        now = self.clock()
        elapsed = max(now - self._updated, 0.0)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._updated = now

    @property
    def tokens(self):
        self._refill()
        return self._tokens

    def try_acquire(self, n=1):
        """Take ``n`` tokens if they are available now; return whether it did."""
        self._refill()
        if n <= self._tokens:
            self._tokens -= n
            return True
        return False

    def wait_time(self, n=1):
        """Seconds until ``n`` tokens will be available (0.0 if they are now).

        Raises ValueError if ``n`` exceeds the capacity (it would never happen).
        """
        if n > self.capacity:
            raise ValueError("cannot wait for %s tokens, capacity is %s" % (n, self.capacity))
        self._refill()
        missing = n - self._tokens
        return max(missing, 0.0) / self.rate
