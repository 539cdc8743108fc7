"""Writing a Config back to INI text."""

from iniconf.config import DEFAULT_SECTION


def _format_value(value):
    # continuation lines must be indented or they would read back as new keys
    return value.replace("\n", "\n    ")


def _format_section(name, items):
    lines = ["[%s]" % name]
    lines.extend("%s = %s" % (key, _format_value(value)) for key, value in items)
    return "\n".join(lines) + "\n"


def dumps(config):
    """INI text that ``parse`` reads back into an equal Config (values uninterpolated)."""
    blocks = []
    if config.defaults:
        blocks.append(_format_section(DEFAULT_SECTION, config.defaults.items()))
    for name in config.sections():
        blocks.append(_format_section(name, config.raw_items(name)))
    return "\n".join(blocks)
