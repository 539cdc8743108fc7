"""Small, dependency-free text statistics."""

from textstats.counts import ngrams, top_words, word_frequencies
from textstats.readability import (
    flesch_kincaid_grade,
    flesch_reading_ease,
    summary,
    syllables,
)
from textstats.tokenize import sentences, words

__all__ = [
    "flesch_kincaid_grade",
    "flesch_reading_ease",
    "ngrams",
    "sentences",
    "summary",
    "syllables",
    "top_words",
    "word_frequencies",
    "words",
]

__version__ = "0.4.0"
