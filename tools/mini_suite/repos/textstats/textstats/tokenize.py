"""Splitting text into words and sentences."""

import re

# A word is a run of letters or digits, optionally joined by apostrophes
# ("don't", "o'clock") or hyphens ("well-known").
_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")

_TERMINATORS = ".!?"


def words(text):
    """Return the words of ``text`` in order, punctuation removed."""
    return _WORD.findall(text)


def sentences(text):
    """Split ``text`` into sentences, keeping each sentence's final punctuation.

    A sentence ends at a run of ``.``, ``!`` or ``?`` that is followed by
    whitespace or by the end of the text. Empty pieces are dropped.
    """
    result = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        if text[i] in _TERMINATORS:
            j = i
            while j + 1 < n and text[j + 1] in _TERMINATORS:
                j += 1
            if j + 1 == n or text[j + 1].isspace():
                piece = text[start : j + 1].strip()
                if piece:
                    result.append(piece)
                start = j + 1
            i = j + 1
        else:
            i += 1
    tail = text[start:].strip()
    if tail:
        result.append(tail)
    return result
