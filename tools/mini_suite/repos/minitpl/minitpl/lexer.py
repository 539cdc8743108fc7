"""Splitting template source into tokens."""

import re
from collections import namedtuple

Token = namedtuple("Token", "kind value lineno")

TEXT, VAR, BLOCK = "text", "var", "block"
_TAG = re.compile(r"({{.*?}}|{%.*?%}|{#.*?#})", re.S)


def tokenize(source):
    """Yield Tokens: TEXT with raw text, VAR and BLOCK with the stripped tag content.

    ``lineno`` is the 1-based line on which the token starts. Comments are dropped.
    """
    lineno = 1
    for piece in _TAG.split(source):
        if piece.startswith("{{") and piece.endswith("}}"):
            yield Token(VAR, piece[2:-2].strip(), lineno)
        elif piece.startswith("{%") and piece.endswith("%}"):
            yield Token(BLOCK, piece[2:-2].strip(), lineno)
        elif piece.startswith("{#") and piece.endswith("#}"):
            pass
        elif piece:
            yield Token(TEXT, piece, lineno)
        lineno += piece.count("\n")
