"""Judging a child's tests by what they do: four runs side by side in one fresh sandbox without network.

1. `child`: the child's tests on the child's code, the contract tests (and everything
   protected as a whole file) from the parent's copy. Every test must pass.
2. `parent_tests`: the parent's tests on the child's code (the baseline count of tests
   and skips; failures here are reported, not rejected: behaviour may change on purpose).
3. `child_broken`: run 1 with every function of the agent (outside `agent/tests`)
   replaced by `raise`: tests that still pass test nothing.
4. `parent_broken`: the parent's tests on the parent's code, broken the same way.

The child weakened its tests when its suite runs fewer tests or skips more than the
parent's, or when tests that caught the broken parent no longer catch the broken child
(deleted, skipped, or emptied). Test identity is `Class.method`, so tests that move
between modules keep it.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import shlex
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.api import Backend, SandboxSpec

from hgm.evolve import unittest_probe
from hgm.evolve.agent_files import PACKAGE, agent_files
from hgm.evolve.protected import SYMBOL_SEP

RUNS = ("child", "parent_tests", "child_broken", "parent_broken")
TESTS_DIR = f"{PACKAGE}/tests"
SANDBOX_DIR = "/work/vet"
BROKEN_MESSAGE = "hgm vet: deliberately broken agent"
FAILING = ("fail", "error")


@dataclass(frozen=True)
class TestSandbox:
    """Where and how long the tests run: a backend, a fresh sandbox per vet, no model access."""

    backend: Backend
    spec: SandboxSpec = field(default_factory=SandboxSpec)
    python: str = "python3"
    timeout_s: float = 300.0  # per run of a suite


@dataclass(frozen=True)
class SuiteRun:
    """One run of a test suite (`tests` is empty when the run produced no report)."""

    name: str
    tests: dict[str, str]
    ran: int
    skipped: int
    ok: bool
    log: str
    reported: bool = True

    @classmethod
    def parse(cls, name: str, report: bytes, log: str) -> "SuiteRun":
        try:
            data = json.loads(report)
            return cls(name, dict(data["tests"]), int(data["ran"]), int(data["skipped"]), bool(data["ok"]), log)
        except (ValueError, KeyError, TypeError):
            return cls(name, {}, 0, 0, False, log, reported=False)

    def failing(self) -> list[str]:
        return sorted(t for t, outcome in self.tests.items() if outcome in FAILING)

    def catching(self) -> Counter:
        """Tests that fail (by Class.method): on a broken agent, the ones that caught it."""
        return Counter(short_id(t) for t in self.failing())


def short_id(test_id: str) -> str:
    """`Class.method` of a unittest id (`pkg.module.Class.method`)."""
    return ".".join(test_id.split(".")[-2:])


# ---------------------------------------------------------------- trees


def _copy(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".complete"))


def _whole_files(manifest: tuple[str, ...], parent_files: list[str]) -> list[str]:
    """Parent paths that the manifest protects as whole files."""
    entries = [e for e in manifest if SYMBOL_SEP not in e]
    return [p for p in parent_files if any(fnmatch.fnmatchcase(p, e) for e in entries)]


def break_source(source: str) -> str | None:
    """`source` with every function body replaced by `raise RuntimeError(...)`; None if it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.body = [ast.parse(f"raise RuntimeError({BROKEN_MESSAGE!r})").body[0]]
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def break_agent(root: Path) -> None:
    """Break every module of `root/agent` outside `agent/tests`, in place."""
    package = root / PACKAGE
    for path in sorted(package.rglob("*.py")):
        if (root / TESTS_DIR) in path.parents:
            continue
        broken = break_source(path.read_text(encoding="utf-8", errors="replace"))
        if broken is not None:
            path.write_text(broken, encoding="utf-8")


def build_trees(parent_dir: Path, child_dir: Path, manifest: tuple[str, ...], dest: Path) -> None:
    """The four trees of RUNS under `dest`."""
    child = dest / "child"
    _copy(child_dir, child)
    for rel in _whole_files(manifest, sorted(agent_files(parent_dir))):  # the contract tests always come from the parent
        (child / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(parent_dir / rel, child / rel)
    parent_tests = dest / "parent_tests"
    _copy(child_dir, parent_tests)
    shutil.rmtree(parent_tests / TESTS_DIR, ignore_errors=True)
    if (parent_dir / TESTS_DIR).is_dir():
        _copy(parent_dir / TESTS_DIR, parent_tests / TESTS_DIR)
    _copy(child, dest / "child_broken")
    break_agent(dest / "child_broken")
    _copy(parent_dir, dest / "parent_broken")
    break_agent(dest / "parent_broken")
    shutil.copy2(unittest_probe.__file__, dest / "probe.py")


def _same_tests(trees: Path) -> bool:
    """True when the child's tree runs exactly the parent's tests (run 2 would repeat run 1)."""
    def tests(tree: Path) -> dict[str, bytes]:
        return agent_files(tree / TESTS_DIR) if (tree / TESTS_DIR).is_dir() else {}

    return tests(trees / "child") == tests(trees / "parent_tests")


def _script(names: tuple[str, ...], python: str, timeout_s: float) -> str:
    """Run the suites side by side (most of a suite's time is waiting), each under its own deadline."""
    lines = ["cd \"$(dirname \"$0\")\""]
    for name in names:
        lines.append(
            f"(cd {name} && timeout -k 5 {int(timeout_s)} {shlex.quote(python)} ../probe.py . ../{name}.json"
            f" > ../{name}.log 2>&1; echo \"{name} exit $?\") &"
        )
    lines.append("wait")
    return "\n".join(lines) + "\n"


def run_suites(parent_dir: Path, child_dir: Path, manifest: tuple[str, ...], sandbox: TestSandbox) -> tuple[dict[str, SuiteRun], float]:
    """The four runs in one fresh sandbox; (runs by name, seconds).

    When the child's tree holds exactly the parent's tests, run 2 is run 1 and is not repeated.
    """
    with tempfile.TemporaryDirectory(prefix="hgm-vet-") as tmp:
        trees = Path(tmp) / "vet"
        build_trees(Path(parent_dir), Path(child_dir), manifest, trees)
        same = _same_tests(trees)
        names = tuple(n for n in RUNS if not (same and n == "parent_tests"))
        (trees / "run.sh").write_text(_script(names, sandbox.python, sandbox.timeout_s), encoding="utf-8")
        with sandbox.backend.open(sandbox.spec) as session:
            session.put(SANDBOX_DIR, trees)
            where = session.resolve(SANDBOX_DIR)
            done = session.exec(f"bash {shlex.quote(where + '/run.sh')}", timeout=sandbox.timeout_s + 40,
                                env={"PYTHONDONTWRITEBYTECODE": "1"})
            runs = {}
            for name in names:
                runs[name] = SuiteRun.parse(name, _get(session, f"{SANDBOX_DIR}/{name}.json"),
                                            _get(session, f"{SANDBOX_DIR}/{name}.log").decode("utf-8", errors="replace"))
    if same:
        runs["parent_tests"] = runs["child"]
    if done.timed_out:
        runs = {name: run if run.reported else SuiteRun(name, {}, 0, 0, False, run.log + "\n(timed out)", False)
                for name, run in runs.items()}
    return runs, done.duration


def _get(session, path: str) -> bytes:
    try:
        return session.get(path)
    except Exception:  # noqa: BLE001 - a missing report is judged as such, whatever the backend raises
        return b""


# ---------------------------------------------------------------- judgement


def own_tests_problem(child: SuiteRun) -> str | None:
    """Why the child's own run does not pass, or None."""
    if not child.reported:
        return "the child's tests did not finish (no report): " + _tail(child.log)
    if child.ran == 0:
        return "the child's suite ran no test"
    if not child.ok:
        failing = child.failing()
        return f"{len(failing)} of {child.ran} tests fail: {', '.join(failing[:8])}; " + _tail(child.log)
    return None


def weakening(runs: dict[str, SuiteRun]) -> tuple[list[str], list[str]]:
    """(problems that reject the child, notes that only warn) about the child's tests."""
    child, parent, child_broken, parent_broken = (runs[n] for n in RUNS)
    problems, notes = [], []
    if parent.reported and child.ran < parent.ran:
        problems.append(f"fewer tests: the child's suite runs {child.ran}, the parent's {parent.ran}")
    if parent.reported and child.skipped > parent.skipped:
        problems.append(f"more skipped tests: {child.skipped} in the child's suite, {parent.skipped} in the parent's")
    if parent_broken.reported and not child_broken.reported:
        problems.append("the child's tests did not finish on a deliberately broken agent")
    elif parent_broken.reported:
        lost = parent_broken.catching() - child_broken.catching()
        if lost:
            names = sorted(lost.elements())
            problems.append(f"{len(names)} test(s) that fail on a deliberately broken parent pass (or are gone) "
                            f"on a broken child: {', '.join(names[:8])}")
    else:
        notes.append("the parent's tests did not finish on a broken agent; that comparison was skipped")
    if parent.reported and parent.failing():
        failing = parent.failing()
        notes.append(f"{len(failing)} of the parent's tests fail on the child's code: {', '.join(failing[:8])}")
    return problems, notes


def _tail(text: str, limit: int = 600) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]
