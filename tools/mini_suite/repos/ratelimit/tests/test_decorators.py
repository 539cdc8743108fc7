from ratelimit import LRUCache, cached


def test_cached_calls_once_per_argument():
    calls = []

    @cached(LRUCache())
    def square(x):
        calls.append(x)
        return x * x

    assert [square(3), square(3), square(4)] == [9, 9, 16]
    assert calls == [3, 4]
    assert square.__name__ == "square"


def test_unhashable_arguments_are_not_cached():
    @cached(LRUCache())
    def total(items):
        return sum(items)

    assert total([1, 2]) == 3
    assert len(total.cache) == 0
