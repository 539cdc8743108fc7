"""Parsing dates from text."""

import datetime as dt
import re

_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


def parse_date(text):
    """Parse ``YYYY-MM-DD`` or ``YYYYMMDD`` (surrounding whitespace allowed) into a date."""
    cleaned = text.strip()
    match = _ISO.match(cleaned) or _COMPACT.match(cleaned)
    if not match:
        raise ValueError("not a date: %r (expected YYYY-MM-DD)" % text)
    year, month, day = (int(part) for part in match.groups())
    return dt.date(year, month, day)


def as_date(value):
    """A date from a date, a datetime (its date part) or a string ``parse_date`` reads."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        return parse_date(value)
    raise TypeError("cannot use %r as a date" % (value,))
