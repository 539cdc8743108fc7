"""Parsing and formatting durations such as "1h30m" or "2d 4h"."""

import datetime as dt
import re

UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhms])")


def parse_duration(text):
    """Parse a duration like ``"1h30m"``, ``"2d 4h"``, ``"1.5h"`` or ``"90s"``.

    Units: w(eeks), d(ays), h(ours), m(inutes), s(econds); parts may be separated
    by spaces. Raises ValueError for anything else, including an empty string.
    """
    cleaned = text.strip().lower()
    if not cleaned:
        raise ValueError("empty duration")
    position = 0
    seconds = 0.0
    for match in _PART.finditer(cleaned):
        if cleaned[position : match.start()].strip():
            break
        seconds += float(match.group(1)) * UNITS[match.group(2)]
        position = match.end()
    if position == 0 or cleaned[position:].strip():
        raise ValueError("not a duration: %r" % text)
    return dt.timedelta(seconds=seconds)


def format_duration(delta):
    """Format a timedelta as ``"1d 2h 3m 4s"``, leaving out zero parts.

    Sub-second parts are dropped; a zero duration is ``"0s"``; negative durations
    get a leading ``"-"``.
    """
    total = int(delta.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    parts = []
    for unit in ("d", "h", "m", "s"):
        amount, total = divmod(total, UNITS[unit])
        if amount:
            parts.append("%d%s" % (amount, unit))
    return sign + (" ".join(parts) or "0s")
