"""The architecture's import rules, checked over every import statement (lazy ones included).

- `agent` imports only the standard library and itself;
- `sandbox` and `archive` import nothing of the project; `evaluators` only `sandbox`;
- `hgm` never imports `agent` (it finds the seed's source by path);
- no import cycle among hgm's subpackages (`hgm.config` and other top-level modules count
  as units of their own).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("agent", "archive", "evaluators", "hgm", "sandbox")
ALLOWED = {
    "agent": {"agent"},
    "archive": {"archive"},
    "sandbox": {"sandbox"},
    "evaluators": {"evaluators", "sandbox"},
    "hgm": {"hgm", "archive", "sandbox", "evaluators"},
}


def imports_of(path: Path) -> list[str]:
    """Absolute module names imported anywhere in `path` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.append(node.module)
    return names


def sources(top: str, with_tests: bool = False) -> list[Path]:
    files = sorted((ROOT / top).rglob("*.py"))
    return [f for f in files if with_tests or "tests" not in f.relative_to(ROOT).parts]


def test_each_top_level_package_imports_only_what_the_design_allows() -> None:
    problems = []
    for top, allowed in ALLOWED.items():
        for path in sources(top):
            for name in imports_of(path):
                root = name.split(".")[0]
                if root in PROJECT and root not in allowed:
                    problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not problems, "\n".join(problems)


def test_agent_imports_only_the_standard_library() -> None:
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sources("agent", with_tests=True)
        for name in imports_of(path)
        if name.split(".")[0] not in sys.stdlib_module_names | {"agent", "__future__"}
    ]
    assert not bad, "\n".join(bad)


def unit_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "hgm" and len(parts) > 1 else None


def hgm_unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in sources("hgm"):
        rel = path.relative_to(ROOT / "hgm").with_suffix("").parts
        here = rel[0]
        if here == "__init__":
            continue
        for name in imports_of(path):
            there = unit_of(name)
            if there and there != here:
                graph[here].add(there)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return visiting[visiting.index(node):] + [node]
        if node in done:
            return None
        visiting.append(node)
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_no_import_cycle_among_hgm_subpackages() -> None:
    graph = hgm_unit_graph()
    assert {"search", "policies", "loop", "evaluation", "evolve", "gateway", "cli"} <= set(graph) | {
        t for targets in graph.values() for t in targets
    }
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"
    assert "loop" not in graph["policies"] and "policies" not in graph["search"]


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
