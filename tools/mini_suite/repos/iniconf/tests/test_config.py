import pytest

from iniconf import Config, InterpolationError, MissingOptionError, parse


def test_typed_getters():
    cfg = parse("[s]\nn = 42\nx = 2.5\nflag = yes\noff = no\n")
    assert cfg.getint("s", "n") == 42
    assert cfg.getfloat("s", "x") == 2.5
    assert cfg.getbool("s", "flag") is True
    assert cfg.getbool("s", "off") is False


def test_getbool_rejects_other_words():
    cfg = parse("[s]\nflag = maybe\n")
    with pytest.raises(ValueError):
        cfg.getbool("s", "flag")


def test_defaults_for_missing_keys():
    cfg = parse("[s]\n")
    assert cfg.get("s", "nope", "fallback") == "fallback"
    assert cfg.getint("s", "nope", 3) == 3


def test_missing_option_error():
    cfg = parse("[s]\n")
    with pytest.raises(MissingOptionError):
        cfg.get("s", "nope")
    with pytest.raises(MissingOptionError):
        cfg.get("other", "nope")


def test_default_section_is_inherited():
    cfg = parse("[DEFAULT]\nuser = admin\n[db]\nhost = db1\n")
    assert cfg.sections() == ["db"]
    assert cfg.get("db", "user") == "admin"
    assert cfg.options("db") == ["host", "user"]


def test_interpolation_same_section():
    cfg = parse("[p]\nroot = /srv\nlogs = ${root}/logs\n")
    assert cfg.get("p", "logs") == "/srv/logs"
    assert cfg.get("p", "logs", raw=True) == "${root}/logs"


def test_interpolation_other_section():
    cfg = parse("[a]\nname = web\n[b]\ntitle = ${a:name} server\n")
    assert cfg.get("b", "title") == "web server"


def test_bad_reference():
    cfg = parse("[a]\nx = ${nope}\n")
    with pytest.raises(InterpolationError):
        cfg.get("a", "x")


def test_set_and_as_dict():
    cfg = Config()
    cfg.set("s", "Key", "v")
    assert cfg.as_dict() == {"s": {"key": "v"}}
