import pytest

from ratelimit import LRUCache, ManualClock


def test_get_and_set():
    cache = LRUCache(maxsize=4)
    cache.set("a", 1)
    assert cache.get("a") == 1
    assert cache.get("missing") is None
    assert cache.get("missing", 0) == 0


def test_evicts_least_recently_set():
    cache = LRUCache(maxsize=2)
    cache.set("a", 1)
    cache.set("b", 2)
    cache.set("c", 3)
    assert cache.keys() == ["b", "c"]
    assert len(cache) == 2


def test_overwrite_refreshes_position():
    cache = LRUCache(maxsize=2)
    cache.set("a", 1)
    cache.set("b", 2)
    cache.set("a", 10)
    cache.set("c", 3)
    assert cache.get("a") == 10
    assert "b" not in cache


def test_hit_and_miss_counters():
    cache = LRUCache()
    cache.set("a", 1)
    cache.get("a")
    cache.get("zzz")
    assert (cache.hits, cache.misses) == (1, 1)


def test_ttl_expires_entries_on_get():
    clock = ManualClock()
    cache = LRUCache(ttl=10, clock=clock)
    cache.set("a", 1)
    clock.advance(9.5)
    assert cache.get("a") == 1
    clock.advance(1)
    assert cache.get("a") is None


def test_pop():
    cache = LRUCache()
    cache.set("a", 1)
    assert cache.pop("a") == 1
    assert cache.pop("a", "gone") == "gone"
    with pytest.raises(KeyError):
        cache.pop("a")


def test_invalid_maxsize():
    with pytest.raises(ValueError):
        LRUCache(maxsize=0)


def test_manual_clock_refuses_going_back():
    with pytest.raises(ValueError):
        ManualClock().advance(-1)
