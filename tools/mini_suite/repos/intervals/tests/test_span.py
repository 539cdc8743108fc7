import datetime as dt

import pytest

from intervals import Span, merge, parse_date

D = dt.date


def test_parse_and_days():
    span = Span.parse("2024-01-01..2024-04-01")
    assert span == Span(D(2024, 1, 1), D(2024, 4, 1))
    assert span.days == 91


def test_parse_compact_dates():
    assert Span.parse("20240101..20240105").days == 4


def test_parse_rejects_garbage():
    with pytest.raises(ValueError):
        Span.parse("2024-01-01")
    with pytest.raises(ValueError):
        parse_date("yesterday")


def test_end_before_start():
    with pytest.raises(ValueError):
        Span(D(2024, 2, 1), D(2024, 1, 1))


def test_contains_is_half_open():
    span = Span(D(2024, 1, 1), D(2024, 1, 3))
    assert D(2024, 1, 1) in span
    assert D(2024, 1, 3) not in span
    assert list(span) == [D(2024, 1, 1), D(2024, 1, 2)]


def test_overlapping_spans():
    a = Span(D(2024, 1, 1), D(2024, 1, 10))
    b = Span(D(2024, 1, 5), D(2024, 1, 20))
    c = Span(D(2024, 2, 1), D(2024, 2, 2))
    assert a.overlaps(b) and b.overlaps(a)
    assert not a.overlaps(c)


def test_merge_sorted_overlapping():
    a = Span(D(2024, 1, 1), D(2024, 1, 10))
    b = Span(D(2024, 1, 5), D(2024, 1, 20))
    assert merge([a, b]) == [Span(D(2024, 1, 1), D(2024, 1, 20))]


def test_merge_keeps_gaps():
    a = Span(D(2024, 1, 1), D(2024, 1, 2))
    b = Span(D(2024, 1, 5), D(2024, 1, 6))
    assert merge([a, b]) == [a, b]
