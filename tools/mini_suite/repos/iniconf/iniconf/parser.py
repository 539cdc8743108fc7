"""Reading INI text into a Config."""

import re

from iniconf.config import Config

_SECTION = re.compile(r"^\[([^\]]+)\]\s*$")
_OPTION = re.compile(r"^([^=:\s][^=:]*?)\s*[=:]\s*(.*)$")
_INLINE_COMMENT = re.compile(r"\s[#;].*$")


class ParseError(ValueError):
    """The text is not valid INI; ``lineno`` is 1-based."""

    def __init__(self, message, lineno):
        super().__init__("line %d: %s" % (lineno, message))
        self.lineno = lineno


def _strip_inline_comment(value):
    return _INLINE_COMMENT.sub("", value).strip()


def parse(text):
    """Parse INI ``text`` into a Config. Raises ParseError on malformed lines."""
    config = Config()
    section = None
    key = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if line[0].isspace() and key is not None:
            # continuation of the previous value
            previous = config.get(section, key, raw=True)
            config.set(section, key, previous + "\n" + _strip_inline_comment(stripped))
            continue
        match = _SECTION.match(stripped)
        if match:
            section = match.group(1).strip()
            config.add_section(section)
            key = None
            continue
        match = _OPTION.match(stripped)
        if not match:
            raise ParseError("expected 'key = value' or '[section]', got %r" % stripped, lineno)
        if section is None:
            raise ParseError("option %r outside of any section" % match.group(1), lineno)
        key = match.group(1).strip().lower()
        config.set(section, key, _strip_inline_comment(match.group(2)))
    return config
