"""Short text forms of numbers, times and money for narrow terminal columns."""

from __future__ import annotations

import datetime as dt
import time


def rate(value: float | None) -> str:
    """A 0..1 rate as '.80' ('1.0' for one, '-' when unknown)."""
    if value is None:
        return "-"
    return "1.0" if value >= 0.995 else f"{value:.2f}".lstrip("0")


def interval(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f"[{rate(low)}-{rate(high)}]"


def money(usd: float | None) -> str:
    if usd is None:
        return "-"
    if usd == 0:
        return "$0"
    return f"${usd:.4f}" if usd < 1 else f"${usd:,.2f}"


def tokens(n: int | None) -> str:
    if not n:
        return "0"
    if n < 10_000:
        return str(n)
    return f"{n / 1000:.0f}k" if n < 1_000_000 else f"{n / 1_000_000:.1f}M"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f}s"
    if value < 3600:
        return f"{value // 60:.0f}m{value % 60:02.0f}s"
    return f"{value // 3600:.0f}h{value % 3600 // 60:02.0f}m"


def age(ts: float | None, now: float | None = None) -> str:
    """How long ago: '12s', '5m', '3h', '2d'."""
    if ts is None:
        return "-"
    delta = max(0.0, (time.time() if now is None else now) - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{delta // size:.0f}{unit}"
    return f"{delta:.0f}s"


def when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def one_line(text: str, limit: int) -> str:
    """The text on one line, cut to `limit` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)] + "…"
