"""An LRU cache with expiry, a memoizing decorator and a token-bucket rate limiter."""

from ratelimit.bucket import TokenBucket
from ratelimit.cache import LRUCache
from ratelimit.clock import ManualClock
from ratelimit.decorators import cached

__all__ = ["LRUCache", "ManualClock", "TokenBucket", "cached"]
