from iniconf import dumps, parse


def test_dumps_simple():
    cfg = parse("[a]\nx = 1\n[b]\ny = two\n")
    assert dumps(cfg) == "[a]\nx = 1\n\n[b]\ny = two\n"


def test_round_trip_multiline_value():
    cfg = parse("[m]\nmotd = Hello\n  world\n")
    again = parse(dumps(cfg))
    assert again.get("m", "motd") == "Hello\nworld"


def test_round_trip_keeps_references_raw():
    cfg = parse("[p]\nroot = /srv\nlogs = ${root}/logs\n")
    assert "${root}/logs" in dumps(cfg)
