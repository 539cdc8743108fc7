"""Syllable counting and readability scores."""

import re

from textstats.tokenize import sentences, words

_VOWEL_GROUPS = re.compile(r"[aeiouyàáâãäåæèéêëìíîïòóôõöùúûüÿ]+")


def syllables(word):
    """Estimate the number of syllables in an English ``word``.

    Counts groups of vowels, then drops a silent final "e" ("make") but not
    the "-le" of "table". Every word has at least one syllable; an empty
    string has none.
    """
    word = word.lower().strip("'\u2019")
    if not word:
        return 0
    count = len(_VOWEL_GROUPS.findall(word))
    if word.endswith("e") and not word.endswith("le") and count > 1:
        count -= 1
    elif word.endswith("le") and len(word) > 2 and word[-3] in "aeiouy" and count > 1:
        count -= 1
    return max(count, 1)


def flesch_reading_ease(text):
    """Flesch reading-ease score of ``text`` (higher is easier).

    206.835 - 1.015 * (words / sentences) - 84.6 * (syllables / words).
    Raises ValueError for text without words.
    """
    tokens = words(text)
    if not tokens:
        raise ValueError("text has no words")
    n_sentences = max(len(sentences(text)), 1)
    n_syllables = sum(syllables(t) for t in tokens)
    return (
        206.835
        - 1.015 * (len(tokens) / n_sentences)
        - 84.6 * (n_syllables / len(tokens))
    )


def flesch_kincaid_grade(text):
    """Flesch-Kincaid grade level of ``text`` (a US school grade).

    0.39 * (words / sentences) + 11.8 * (syllables / words) - 15.59.
    Raises ValueError for text without words.
    """
    tokens = words(text)
    if not tokens:
        raise ValueError("text has no words")
    n_sentences = max(len(sentences(text)), 1)
    n_syllables = sum(syllables(t) for t in tokens)
    return (
        0.39 * (len(tokens) / n_sentences)
        + 11.8 * (n_syllables / len(tokens))
        - 15.59
    )


def summary(text):
    """A dict of basic statistics about ``text``."""
    tokens = words(text)
    return {
        "characters": len(text),
        "words": len(tokens),
        "sentences": len(sentences(text)),
        "unique_words": len({t.lower() for t in tokens}),
        "syllables": sum(syllables(t) for t in tokens),
    }
