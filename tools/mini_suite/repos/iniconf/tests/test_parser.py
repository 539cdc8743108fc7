import pytest

from iniconf import ParseError, parse

SAMPLE = """\
# top comment
[server]
host = 0.0.0.0
port: 8080   # the listening port
; a comment line

[paths]
Root = /srv
"""


def test_sections_in_order():
    assert parse(SAMPLE).sections() == ["server", "paths"]


def test_values_and_inline_comment():
    cfg = parse(SAMPLE)
    assert cfg.get("server", "host") == "0.0.0.0"
    assert cfg.get("server", "port") == "8080"


def test_keys_are_case_insensitive():
    cfg = parse(SAMPLE)
    assert cfg.get("paths", "root") == "/srv"
    assert cfg.get("paths", "ROOT") == "/srv"


def test_continuation_lines():
    cfg = parse("[m]\nmotd = Hello\n  world\n")
    assert cfg.get("m", "motd") == "Hello\nworld"


def test_option_outside_section_is_an_error():
    with pytest.raises(ParseError):
        parse("key = value\n")


def test_garbage_line_is_an_error():
    with pytest.raises(ParseError):
        parse("[s]\nthis is not an option\n")


def test_empty_value():
    assert parse("[s]\nkey =\n").get("s", "key") == ""
