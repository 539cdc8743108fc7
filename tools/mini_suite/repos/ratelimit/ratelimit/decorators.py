"""Memoizing functions with an LRUCache."""

import functools

from ratelimit.cache import make_key

_MISSING = object()


def cached(cache):
    """Decorator: remember results of the function in ``cache`` (an LRUCache).

    The wrapper gets a ``cache`` attribute. Calls with unhashable arguments are
    not cached.
    """

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            key = make_key(args, kwargs)
            try:
                value = cache.get(key, _MISSING)
            except TypeError:  # unhashable argument
                return func(*args, **kwargs)
            if value is _MISSING:
                value = func(*args, **kwargs)
                cache.set(key, value)
            return value

        wrapper.cache = cache
        return wrapper

    return decorate
