"""hgm: the Huxley-Gödel Machine, an evolution loop for self-improving coding agents."""

__version__ = "0.1.0"
