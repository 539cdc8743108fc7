import pytest

from ratelimit import ManualClock, TokenBucket


def test_starts_full_and_drains():
    bucket = TokenBucket(rate=1, capacity=3, clock=ManualClock())
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]


def test_refills_over_time():
    clock = ManualClock()
    bucket = TokenBucket(rate=2, capacity=2, clock=clock)
    assert bucket.try_acquire(2)
    assert not bucket.try_acquire()
    clock.advance(0.5)
    assert bucket.try_acquire()
    assert not bucket.try_acquire()


def test_acquire_many_is_all_or_nothing():
    bucket = TokenBucket(rate=1, capacity=5, clock=ManualClock())
    assert bucket.try_acquire(4)
    assert not bucket.try_acquire(2)
    assert bucket.tokens == pytest.approx(1)


def test_wait_time_when_empty():
    bucket = TokenBucket(rate=5, capacity=5, clock=ManualClock())
    assert bucket.wait_time() == 0.0
    bucket.try_acquire(5)
    assert bucket.wait_time() == pytest.approx(0.2)


def test_rejects_bad_parameters():
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1)
