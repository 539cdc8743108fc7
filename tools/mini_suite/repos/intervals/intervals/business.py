"""Counting and adding business days (Monday to Friday, minus holidays).

Holidays may be dates, datetimes or "YYYY-MM-DD" strings.
"""

import datetime as dt

from intervals.parsing import as_date

_ONE_DAY = dt.timedelta(days=1)


def _holiday_set(holidays):
    # holidays may be given as dates, datetimes or "YYYY-MM-DD" strings
    return {as_date(h) for h in holidays}


def is_business_day(day, holidays=()):
    return day.weekday() < 5 and day not in holidays


def business_days(start, end, holidays=()):
    """Number of business days in the half-open range start <= d < end."""
    holidays = _holiday_set(holidays)
    count = 0
    day = start
    while day < end:
        if is_business_day(day, holidays):
            count += 1
        day += _ONE_DAY
    return count


def add_business_days(day, n, holidays=()):
    """The date ``n`` business days after ``day`` (before it if ``n`` is negative).

    ``add_business_days(d, 0)`` is ``d`` itself, even on a weekend.
    """
    holidays = _holiday_set(holidays)
    step = _ONE_DAY if n >= 0 else -_ONE_DAY
    remaining = abs(n)
    while remaining:
        day += step
        if is_business_day(day, holidays):
            remaining -= 1
    return day
