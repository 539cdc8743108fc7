"""A tiny, safe-by-default text template engine."""

from minitpl.engine import Template, TemplateSyntaxError, render
from minitpl.filters import FILTERS

__all__ = ["FILTERS", "Template", "TemplateSyntaxError", "render"]
