import pytest

from textstats.readability import flesch_reading_ease, summary, syllables


@pytest.mark.parametrize(
    "word, expected",
    [("cat", 1), ("make", 1), ("water", 2), ("banana", 3)],
)
def test_syllables(word, expected):
    assert syllables(word) == expected


def test_flesch_simple_sentence():
    assert flesch_reading_ease("A cat sat on a mat.") == pytest.approx(116.145)


def test_flesch_needs_words():
    with pytest.raises(ValueError):
        flesch_reading_ease("...")


def test_summary_counts():
    stats = summary("The cat sat. The cat ran.")
    assert stats["words"] == 6
    assert stats["sentences"] == 2
    assert stats["unique_words"] == 4
