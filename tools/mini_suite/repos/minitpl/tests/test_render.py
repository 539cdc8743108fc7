import pytest

from minitpl import Template, TemplateSyntaxError, render


class User:
    def __init__(self, name):
        self.name = name


def test_plain_text():
    assert render("just text") == "just text"


def test_variables_and_dotted_lookup():
    assert render("{{ a.b.c }}", a={"b": {"c": "deep"}}) == "deep"
    assert render("{{ user.name }}", user=User("Ada")) == "Ada"
    assert render("{{ items.1 }}", items=["x", "y"]) == "y"


def test_missing_names_render_empty():
    assert render("[{{ nope }}][{{ a.missing.deeper }}]", a={}) == "[][]"


def test_literals():
    assert render("{{ 'hi'|upper }} {{ 42 }}") == "HI 42"


def test_autoescape():
    assert render("{{ x }}", x="<b>&</b>") == "&lt;b&gt;&amp;&lt;/b&gt;"
    assert render("{{ x|safe }}", x="<b>") == "<b>"
    assert Template("{{ x }}", autoescape=False).render(x="<b>") == "<b>"


def test_if_else():
    source = "{% if user %}hi {{ user }}{% else %}anonymous{% endif %}"
    assert render(source, user="bob") == "hi bob"
    assert render(source, user="") == "anonymous"


def test_if_not():
    assert render("{% if not items %}none{% endif %}", items=[]) == "none"


def test_for_loop_with_loop_variables():
    source = "{% for t in tags %}{{ loop.index }}{% if loop.last %}.{% else %},{% endif %}{% endfor %}"
    assert render(source, tags=["a", "b", "c"]) == "1,2,3."


def test_nested_blocks():
    source = "{% for row in rows %}{% for cell in row %}{{ cell }}{% endfor %};{% endfor %}"
    assert render(source, rows=[[1, 2], [3]]) == "12;3;"


def test_comments_are_dropped():
    assert render("a{# note #}b") == "ab"


def test_unknown_tag():
    with pytest.raises(TemplateSyntaxError):
        Template("{% while x %}{% endwhile %}")


def test_unknown_filter():
    with pytest.raises(TemplateSyntaxError):
        Template("{{ x|nope }}")
