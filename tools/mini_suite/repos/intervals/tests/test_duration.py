import datetime as dt

import pytest

from intervals import format_duration, parse_duration


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("1h30m", 5400), ("2d 4h", 187200), ("1.5h", 5400), ("1w", 604800), (" 5M ", 300)],
    ids=["seconds", "hours-minutes", "days-hours", "fraction", "week", "padded-upper"],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text", ["", "abc", "5", "1h x", "h1"], ids=["empty", "word", "no-unit", "trailing", "unit-first"]
)
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration_hours_minutes():
    assert format_duration(dt.timedelta(hours=1, minutes=30)) == "1h 30m"


def test_format_duration_zero():
    assert format_duration(dt.timedelta(0)) == "0s"


def test_format_duration_drops_microseconds():
    assert format_duration(dt.timedelta(seconds=5, microseconds=300)) == "5s"
