"""Durations, date spans and business-day arithmetic."""

from intervals.business import add_business_days, business_days
from intervals.duration import format_duration, parse_duration
from intervals.parsing import parse_date
from intervals.span import Span, merge

__all__ = [
    "Span",
    "add_business_days",
    "business_days",
    "format_duration",
    "merge",
    "parse_date",
    "parse_duration",
]
