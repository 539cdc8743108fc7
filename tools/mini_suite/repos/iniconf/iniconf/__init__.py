"""A small INI-style configuration parser."""

from iniconf.config import Config, InterpolationError, MissingOptionError
from iniconf.parser import ParseError, parse
from iniconf.writer import dumps

__all__ = [
    "Config",
    "InterpolationError",
    "MissingOptionError",
    "ParseError",
    "dumps",
    "parse",
]
