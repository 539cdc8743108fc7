"""Parsing tokens into nodes and rendering them."""

import re

from minitpl.filters import FILTERS, Markup, escape
from minitpl.lexer import TEXT, VAR, tokenize

_LITERAL = re.compile(r'^(?:"([^"]*)"|\'([^\']*)\'|(-?\d+(?:\.\d+)?))$')
_FOR = re.compile(r"^for\s+(\w+)\s+in\s+(.+)$")


class TemplateSyntaxError(ValueError):
    """The template cannot be parsed."""


def _error(message, token):
    return TemplateSyntaxError("line %d: %s" % (token.lineno, message))


def _literal(text):
    match = _LITERAL.match(text)
    if not match:
        return None, False
    string = match.group(1) if match.group(1) is not None else match.group(2)
    if string is not None:
        return string, True
    number = match.group(3)
    return (float(number) if "." in number else int(number)), True


def lookup(context, expr):
    """Resolve a literal or a dotted name against ``context``; missing names give None."""
    value, is_literal = _literal(expr)
    if is_literal:
        return value
    parts = expr.split(".")
    value = context.get(parts[0])
    for part in parts[1:]:
        if value is None:
            return None
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, (list, tuple)) and part.isdigit():
            index = int(part)
            value = value[index] if index < len(value) else None
        else:
            value = getattr(value, part, None)
    return value


class Output:
    def __init__(self, token):
        expr, *filters = [part.strip() for part in token.value.split("|")]
        self.expr = expr
        self.filters = []
        for spec in filters:
            name, _, arg = spec.partition(":")
            if name not in FILTERS:
                raise _error("unknown filter %r" % name, token)
            self.filters.append((FILTERS[name], arg or None))

    def render(self, context, autoescape):
        value = lookup(context, self.expr)
        for func, arg in self.filters:
            value = func(value) if arg is None else func(value, lookup(context, arg))
        if value is None:
            value = ""
        if autoescape and not isinstance(value, Markup):
            value = escape(value)
        return str(value)


class If:
    def __init__(self, condition, body, orelse):
        self.negate = condition.startswith("not ")
        self.expr = condition[4:].strip() if self.negate else condition
        self.body = body
        self.orelse = orelse

    def render(self, context, autoescape):
        truth = bool(lookup(context, self.expr))
        branch = self.body if truth != self.negate else self.orelse
        return render_nodes(branch, context, autoescape)


class For:
    def __init__(self, name, expr, body):
        self.name = name
        self.expr = expr
        self.body = body

    def render(self, context, autoescape):
        items = list(lookup(context, self.expr) or ())
        parts = []
        for index, item in enumerate(items):
            scope = dict(context)
            scope[self.name] = item
            scope["loop"] = {
                "index": index + 1,
                "first": index == 0,
                "last": index == len(items) - 1,
            }
            parts.append(render_nodes(self.body, scope, autoescape))
        return "".join(parts)


class Text:
    def __init__(self, text):
        self.text = text

    def render(self, context, autoescape):
        return self.text


def render_nodes(nodes, context, autoescape):
    return "".join(node.render(context, autoescape) for node in nodes)


def parse(tokens, end=(), opener=None):
    """Parse until one of the ``end`` block tags; return (nodes, that tag)."""
    nodes = []
    for token in tokens:
        if token.kind == TEXT:
            nodes.append(Text(token.value))
        elif token.kind == VAR:
            nodes.append(Output(token))
        elif token.value in end:
            return nodes, token.value
        elif token.value.startswith("if "):
            body, tag = parse(tokens, ("else", "endif"), token)
            orelse = []
            if tag == "else":
                orelse, tag = parse(tokens, ("endif",), token)
            nodes.append(If(token.value[3:].strip(), body, orelse))
        elif token.value.startswith("for "):
            match = _FOR.match(token.value)
            if not match:
                raise _error("bad for tag %r" % token.value, token)
            body, _ = parse(tokens, ("endfor",), token)
            nodes.append(For(match.group(1), match.group(2).strip(), body))
        else:
            raise _error("unexpected tag {%% %s %%}" % token.value, token)
    if end:
        raise _error("{%% %s %%} is never closed" % opener.value, opener)
    return nodes, None


class Template:
    """A parsed template; ``render(**context)`` fills it in."""

    def __init__(self, source, autoescape=True):
        self.nodes, _ = parse(iter(tokenize(source)))
        self.autoescape = autoescape

    def render(self, **context):
        return render_nodes(self.nodes, context, self.autoescape)


def render(source, **context):
    """Render ``source`` once with HTML escaping."""
    return Template(source).render(**context)
