"""Built-in filters: functions of (value, *args)."""


class Markup(str):
    """A string that is already safe to put into HTML."""


def escape(value):
    if isinstance(value, Markup):
        return value
    text = str(value)
    return Markup(
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def safe(value):
    return Markup(str(value))


def default(value, fallback=""):
    """``fallback`` when the value is missing (None); falsy values like 0 are kept."""
    return fallback if value is None else value


def join(value, sep=", "):
    return sep.join(str(item) for item in value)


def length(value):
    return len(value) if value is not None else 0


def truncate(value, limit=80):
    """At most ``limit`` characters, cut at a word boundary, with "..." when cut."""
    text = str(value)
    limit = int(limit)
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 3, 0)]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "..."


FILTERS = {
    "default": default,
    "escape": escape,
    "join": join,
    "length": length,
    "lower": lambda value: str(value).lower(),
    "safe": safe,
    "title": lambda value: str(value).title(),
    "trim": lambda value: str(value).strip(),
    "truncate": truncate,
    "upper": lambda value: str(value).upper(),
}
