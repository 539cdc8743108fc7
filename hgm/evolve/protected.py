"""Protected paths: what no child may change, as a manifest a run freezes in its config.

A manifest entry is a path or glob relative to the agent directory (`agent/tests/test_contract*.py`)
or `PATH::QUALNAME`, one function inside a file (`agent/llm.py::parse_url`), compared by its
syntax tree (moving it within the file is fine, changing it is not).

The default manifest of an agent (`default_manifest`) protects:
- the contract tests (`agent/tests/test_contract*.py`, added ones included) and every module of
  `agent/tests/` they import, transitively (e.g. `fake_server.py`), plus the package `__init__.py`
  files those imports execute (a child could otherwise patch `unittest` from there);
- the endpoint handling of the LLM access module (`agent/llm.py`): each function that decides
  where model calls go (it names `HGM_LLM_URL`, a socket or HTTP connection, or a URL).
Modules of the agent itself that the tests exercise are not protected: the tests judge them.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import PurePosixPath
from typing import Iterable, Iterator

CONTRACT_GLOB = "agent/tests/test_contract*.py"
TESTS_PACKAGE = "agent.tests"
LLM_MODULE = "agent/llm.py"
ENDPOINT_NAMES = frozenset({"socket", "HTTPConnection", "HTTPSConnection", "urlsplit", "urlparse",
                            "create_connection", "connect", "AF_UNIX", "AF_INET"})
ENDPOINT_TEXT = ("HGM_LLM_URL", "localhost", "127.0.0.1", "unix:", "http://", "https://")
SYMBOL_SEP = "::"


def default_manifest(files: dict[str, bytes]) -> tuple[str, ...]:
    """The protected entries of an agent whose files are `files` (see the module docstring)."""
    contract = sorted(p for p in files if fnmatch.fnmatchcase(p, CONTRACT_GLOB))
    entries = [CONTRACT_GLOB, *sorted(_test_closure(contract, files) - set(contract))]
    source = files.get(LLM_MODULE)
    if source is not None:
        entries += [f"{LLM_MODULE}{SYMBOL_SEP}{name}" for name in endpoint_functions(_text(source))]
    return tuple(dict.fromkeys(entries))


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _parse(data: bytes | None) -> ast.Module | None:
    if data is None:
        return None
    try:
        return ast.parse(_text(data))
    except (SyntaxError, ValueError):
        return None


def _module_file(module: str, files: dict[str, bytes]) -> str | None:
    base = module.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if candidate in files:
            return candidate
    return None


def _imported_modules(path: str, tree: ast.Module) -> Iterator[str]:
    package = PurePosixPath(path).parent.as_posix().replace("/", ".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] if node.level > 1 else parts)
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)  # `from pkg import mod`


def _test_closure(start: list[str], files: dict[str, bytes]) -> set[str]:
    """`start` plus the agent/tests modules they import (transitively) and the package inits run."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = _parse(files.get(path))
        if tree is None:
            continue
        for module in _imported_modules(path, tree):
            parts = module.split(".")
            for i in range(1, len(parts)):  # the packages an import executes
                init = _module_file(".".join(parts[:i]), files)
                if init is not None and init.endswith("__init__.py"):
                    todo.append(init)
            target = _module_file(module, files)
            if target is not None and (module == TESTS_PACKAGE or module.startswith(TESTS_PACKAGE + ".")):
                todo.append(target)
    return seen


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    """(qualname, node) of every function and class, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from _functions(node, name + ".")


def _own_nodes(func: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's body, without nested functions and classes."""
    todo = list(ast.iter_child_nodes(func))
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


def _mentions_endpoint(func: ast.AST) -> bool:
    for node in _own_nodes(func):
        if isinstance(node, ast.Name) and node.id in ENDPOINT_NAMES:
            return True
        if isinstance(node, ast.Attribute) and node.attr in ENDPOINT_NAMES:
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and any(t in node.value for t in ENDPOINT_TEXT):
            return True
    return False


def endpoint_functions(source: str) -> list[str]:
    """Qualnames of the functions in `source` that handle where model calls go."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    return [name for name, node in _functions(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _mentions_endpoint(node)]


def _symbol_dump(data: bytes | None, qualname: str) -> str | None:
    tree = _parse(data)
    if tree is None:
        return None
    for name, node in _functions(tree):
        if name == qualname:
            return ast.dump(node, include_attributes=False)
    return None


def violations(manifest: Iterable[str], parent: dict[str, bytes], child: dict[str, bytes], touched: list[str]) -> list[str]:
    """What the child changed of the protected entries (one line each; empty if nothing)."""
    found: list[str] = []
    for entry in manifest:
        if SYMBOL_SEP in entry:
            path, qualname = entry.split(SYMBOL_SEP, 1)
            before = _symbol_dump(parent.get(path), qualname)
            if before is None:
                continue  # not in the parent: nothing to protect
            after = _symbol_dump(child.get(path), qualname)
            if after is None:
                found.append(f"{path}: protected function {qualname} was removed")
            elif after != before:
                found.append(f"{path}: protected function {qualname} was changed")
            continue
        for path in touched:
            if fnmatch.fnmatchcase(path, entry):
                how = "added" if path not in parent else "removed" if path not in child else "modified"
                found.append(f"{path} {how} (protected by {entry!r})" if entry != path else f"{path} {how}")
    return list(dict.fromkeys(found))


def check_manifest(manifest: Iterable[object]) -> tuple[str, ...]:
    """The manifest as a tuple of strings; ValueError naming a bad entry."""
    out = []
    for entry in manifest:
        if not isinstance(entry, str) or not entry.strip() or entry.startswith("/") or ".." in entry.split("/"):
            raise ValueError(f"protected-path entry {entry!r} must be a relative path, glob or PATH::FUNCTION")
        out.append(entry)
    return tuple(out)
