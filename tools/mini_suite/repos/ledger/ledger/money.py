"""Money: an exact amount in one currency."""

import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from ledger.currencies import SYMBOLS, minor_units

_WITH_CODE = re.compile(r"^(-?[\d,]+(?:\.\d+)?)\s+([A-Z]{3})$")
_WITH_SYMBOL = re.compile(r"^(-?)(\S)\s*([\d,]+(?:\.\d+)?)$")


class CurrencyMismatch(ValueError):
    """An operation mixed two currencies."""


def _quantize(amount, currency):
    exponent = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(exponent, rounding=ROUND_HALF_EVEN)


class Money:
    """An amount of one currency, rounded to the currency's minor unit."""

    __slots__ = ("amount", "currency")

    def __init__(self, amount, currency):
        if isinstance(amount, float):
            raise TypeError("use a string or Decimal, not a float: %r" % amount)
        try:
            value = Decimal(amount)
        except InvalidOperation:
            raise ValueError("not an amount: %r" % (amount,)) from None
        self.currency = currency
        self.amount = _quantize(value, currency)

    @classmethod
    def parse(cls, text):
        """Parse ``"12.50 EUR"``, ``"-3 USD"``, ``"$1,234.56"`` or ``"-€5"``."""
        text = text.strip()
        match = _WITH_CODE.match(text)
        if match:
            return cls(match.group(1).replace(",", ""), match.group(2))
        match = _WITH_SYMBOL.match(text)
        if match and match.group(2) in SYMBOLS:
            sign, symbol, number = match.groups()
            return cls(sign + number.replace(",", ""), SYMBOLS[symbol])
        raise ValueError("cannot parse money from %r" % (text,))

    def __repr__(self):
        return "Money(%r, %r)" % (str(self.amount), self.currency)

    def __str__(self):
        return "%s %s" % (self.amount, self.currency)

    def _check(self, other):
        if not isinstance(other, Money):
            raise TypeError("expected Money, got %r" % (other,))
        if other.currency != self.currency:
            raise CurrencyMismatch("%s and %s" % (self.currency, other.currency))

    def __eq__(self, other):
        if not isinstance(other, Money):
            return NotImplemented
        return (self.amount, self.currency) == (other.amount, other.currency)

    def __hash__(self):
        return hash((self.amount, self.currency))

    def __lt__(self, other):
        self._check(other)
        return self.amount < other.amount

    def __add__(self, other):
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other):
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self):
        return Money(-self.amount, self.currency)

    def __mul__(self, factor):
        if isinstance(factor, float):
            factor = Decimal(str(factor))
        return Money(self.amount * Decimal(factor), self.currency)

    __rmul__ = __mul__

    def is_zero(self):
        return self.amount == 0

    def allocate(self, ratios):
        """Split into parts proportional to ``ratios`` that add up exactly to self.

        Leftover minor units go one each to the first parts.
        """
        if not ratios or any(r < 0 for r in ratios) or sum(ratios) == 0:
            raise ValueError("ratios must be non-negative and not all zero: %r" % (ratios,))
        unit = Decimal(1).scaleb(-minor_units(self.currency))
        total = sum(ratios)
        units = int(self.amount / unit)
        shares = [units * r // total for r in ratios]
        for i in range(units - sum(shares)):
            shares[i] += 1
        return [Money(share * unit, self.currency) for share in shares]
