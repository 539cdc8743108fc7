"""Half-open date spans: Span(start, end) holds the dates start <= d < end."""

import datetime as dt

from intervals.parsing import parse_date


class Span:
    __slots__ = ("start", "end")

    def __init__(self, start, end):
        if end < start:
            raise ValueError("span ends before it starts: %s..%s" % (start, end))
        self.start = start
        self.end = end

    @classmethod
    def parse(cls, text):
        """Parse ``"START..END"``, e.g. ``"2024-01-01..2024-02-01"``."""
        first, sep, last = text.partition("..")
        if not sep:
            raise ValueError("not a span: %r (expected START..END)" % text)
        return cls(parse_date(first), parse_date(last))

    def __repr__(self):
        return "Span(%r, %r)" % (self.start, self.end)

    def __eq__(self, other):
        if not isinstance(other, Span):
            return NotImplemented
        return (self.start, self.end) == (other.start, other.end)

    def __hash__(self):
        return hash((self.start, self.end))

    @property
    def days(self):
        return (self.end - self.start).days

    def __contains__(self, day):
        return self.start <= day < self.end

    def __iter__(self):
        day = self.start
        while day < self.end:
            yield day
            day += dt.timedelta(days=1)

    def overlaps(self, other):
        """True if the spans share at least one day."""
        return self.start < other.end and other.start < self.end

    def intersection(self, other):
        """The days both spans hold, as a Span, or None if they do not overlap."""
        if not self.overlaps(other):
            return None
        return Span(max(self.start, other.start), min(self.end, other.end))


def merge(spans):
    """Merge overlapping or touching spans; return them sorted by start."""
    result = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if result and span.start <= result[-1].end:
            last = result[-1]
            result[-1] = Span(last.start, max(last.end, span.end))
        else:
            result.append(span)
    return result
