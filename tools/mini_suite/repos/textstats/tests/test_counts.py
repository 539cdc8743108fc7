import pytest

from textstats.counts import ngrams, top_words, word_frequencies


def test_word_frequencies_ignores_case_by_default():
    counts = word_frequencies("The cat and the hat")
    assert counts["the"] == 2
    assert counts["cat"] == 1


def test_word_frequencies_case_sensitive():
    counts = word_frequencies("The cat and the hat", ignore_case=False)
    assert counts["The"] == 1
    assert counts["the"] == 1


def test_word_frequencies_stopwords():
    counts = word_frequencies("the cat and the hat", stopwords={"the", "and"})
    assert dict(counts) == {"cat": 1, "hat": 1}


def test_top_words_orders_by_count():
    assert top_words("b a b c b a", 2) == [("b", 3), ("a", 2)]


def test_top_words_negative_n():
    with pytest.raises(ValueError):
        top_words("a b", -1)


def test_ngrams_trigrams():
    assert ngrams("a b c d".split(), 3) == [("a", "b", "c"), ("b", "c", "d")]


def test_ngrams_rejects_zero():
    with pytest.raises(ValueError):
        ngrams(["a"], 0)
