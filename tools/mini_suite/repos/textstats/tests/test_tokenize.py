from textstats.tokenize import sentences, words


def test_words_strips_punctuation():
    assert words("Hello, world!") == ["Hello", "world"]


def test_words_keeps_contractions_and_hyphens():
    assert words("It's a well-known fact.") == ["It's", "a", "well-known", "fact"]


def test_words_of_empty_text():
    assert words("") == []


def test_sentences_basic():
    assert sentences("One. Two! Three?") == ["One.", "Two!", "Three?"]


def test_sentences_without_final_punctuation():
    assert sentences("First one. Second one") == ["First one.", "Second one"]


def test_sentences_collapses_repeated_punctuation():
    assert sentences("Really?! Yes...") == ["Really?!", "Yes..."]


def test_sentences_of_blank_text():
    assert sentences("   ") == []
