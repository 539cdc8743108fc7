from minitpl import render
from minitpl.filters import escape


def test_case_filters():
    assert render("{{ s|upper }} {{ s|lower }} {{ s|title }}", s="hello World") == (
        "HELLO WORLD hello world Hello World"
    )


def test_trim_and_length():
    assert render("[{{ s|trim }}] {{ items|length }}", s="  x  ", items=[1, 2, 3]) == "[x] 3"


def test_join():
    assert render("{{ xs|join:', ' }}", xs=["a", "b"]) == "a, b"
    assert render("{{ xs|join }}", xs=[1, 2]) == "1, 2"


def test_default_for_missing():
    assert render("{{ nope|default:'n/a' }}") == "n/a"


def test_escape_basic():
    assert escape("<a & b>") == "&lt;a &amp; b&gt;"


def test_chained_filters():
    assert render("{{ s|trim|upper }}", s="  hey ") == "HEY"
