import datetime as dt

from intervals import add_business_days, business_days

D = dt.date


def test_business_days_full_week():
    # Monday 2024-01-01 up to (not including) Monday 2024-01-08
    assert business_days(D(2024, 1, 1), D(2024, 1, 8)) == 5


def test_business_days_with_holiday():
    assert business_days(D(2024, 1, 1), D(2024, 1, 8), holidays=[D(2024, 1, 1)]) == 4


def test_business_days_empty_range():
    assert business_days(D(2024, 1, 5), D(2024, 1, 5)) == 0


def test_add_business_days_skips_weekend():
    # Friday + 1 business day = Monday
    assert add_business_days(D(2024, 1, 5), 1) == D(2024, 1, 8)


def test_add_business_days_skips_holidays():
    assert add_business_days(D(2024, 12, 24), 1, holidays=[D(2024, 12, 25)]) == D(2024, 12, 26)


def test_add_zero_business_days():
    assert add_business_days(D(2024, 1, 6), 0) == D(2024, 1, 6)
