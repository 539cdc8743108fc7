from decimal import Decimal

import pytest

from ledger import CurrencyMismatch, Money


def test_rounds_to_cents():
    assert Money("10.005", "EUR").amount == Decimal("10.00")
    assert Money("10.015", "EUR").amount == Decimal("10.02")
    assert str(Money("3", "USD")) == "3.00 USD"


def test_floats_are_refused():
    with pytest.raises(TypeError):
        Money(0.1, "EUR")


def test_unknown_currency():
    with pytest.raises(ValueError):
        Money("1", "XXX")


def test_arithmetic():
    a, b = Money("10.50", "EUR"), Money("0.75", "EUR")
    assert a + b == Money("11.25", "EUR")
    assert a - b == Money("9.75", "EUR")
    assert -a == Money("-10.50", "EUR")
    assert a * 2 == Money("21.00", "EUR")
    assert 3 * b == Money("2.25", "EUR")


def test_currency_mismatch():
    with pytest.raises(CurrencyMismatch):
        Money("1", "EUR") + Money("1", "USD")


def test_ordering():
    assert Money("1", "EUR") < Money("2", "EUR")


def test_parse_with_code():
    assert Money.parse("12.50 EUR") == Money("12.50", "EUR")
    assert Money.parse("-3 USD") == Money("-3", "USD")


def test_parse_with_dollar_sign():
    assert Money.parse("$1,234.56") == Money("1234.56", "USD")
    assert Money.parse("-$5") == Money("-5", "USD")


def test_parse_garbage():
    with pytest.raises(ValueError):
        Money.parse("twelve euros")


def test_allocate_even_split():
    assert Money("100", "EUR").allocate([1, 1]) == [Money("50", "EUR"), Money("50", "EUR")]


def test_allocate_rejects_bad_ratios():
    with pytest.raises(ValueError):
        Money("1", "EUR").allocate([0, 0])
    with pytest.raises(ValueError):
        Money("1", "EUR").allocate([])
