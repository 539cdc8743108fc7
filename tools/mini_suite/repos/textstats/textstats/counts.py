"""Word frequencies and n-grams."""

from collections import Counter

from textstats.tokenize import words

DEFAULT_STOPWORDS = frozenset(
    "a an and are as at be but by for if in is it of on or the to was with".split()
)


def word_frequencies(text, ignore_case=True, stopwords=None):
    """Count how often each word occurs in ``text``.

    With ``ignore_case`` (the default) words are lower-cased first. Words in
    ``stopwords`` (any iterable of words) are left out of the result.
    """
    tokens = words(text)
    if ignore_case:
        tokens = [t.lower() for t in tokens]
    skip = set(stopwords or ())
    if ignore_case:
        skip = {s.lower() for s in skip}
    return Counter(t for t in tokens if t not in skip)


def top_words(text, n=10, stopwords=None):
    """The ``n`` most frequent words as ``(word, count)`` pairs.

    Most frequent first; words with the same count are in alphabetical order,
    so the result does not depend on where the words appear in the text.
    """
    if n < 0:
        raise ValueError("n must be >= 0, got %r" % (n,))
    counts = word_frequencies(text, stopwords=stopwords)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:n]


def ngrams(tokens, n=2):
    """All runs of ``n`` consecutive tokens, as tuples, in order."""
    if n < 1:
        raise ValueError("n must be >= 1, got %r" % (n,))
    tokens = list(tokens)
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
