"""What the library knows about currencies."""

# ISO 4217 code -> number of decimal places of the minor unit
MINOR_UNITS = {
    "BHD": 3,
    "CHF": 2,
    "EUR": 2,
    "GBP": 2,
    "JPY": 0,
    "KWD": 3,
    "USD": 2,
}

# symbols accepted in front of an amount by Money.parse
SYMBOLS = {
    "$": "USD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
}


def minor_units(code):
    try:
        return MINOR_UNITS[code]
    except KeyError:
        raise ValueError("unknown currency %r" % (code,)) from None
