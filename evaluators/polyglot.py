"""Aider's Polyglot benchmark as a suite: `<language>/exercises/practice/<exercise>/`.

Each exercise holds `.docs/instructions.md` (+ optional `.docs/instructions.append.md`)
and `.meta/config.json` naming `files.solution`, `files.test` and `files.example`.

- The agent sees the instructions (problem statement) and a git repository of the
  exercise WITHOUT its tests, `.meta/` and `.docs/` (stubs and support files only).
- Grading writes the test files into the repository (inside the eval script, so
  they reach only the grader's sandbox) and runs the language's test command
  between swebench's markers; FAIL_TO_PASS is every test found in the test files.
- Gold patch = the example solution (`files.example`) written over the stubs.
- Python runs on hgm-base. Go and Rust have recipes (go test / cargo test) used
  when their toolchain is in the image; every other language, or a missing
  toolchain, makes the task skipped with a reason.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sandbox.api import BASE_IMAGE, Backend, Session

from evaluators.repos import cache_dir, cached_dir, put_repo
from evaluators.suite import TESTBED, GradingEnv, Suite, SuiteError
from evaluators.task import Task, TaskError, parse_task

BASE_COMMIT = "polyglot-stubs"
IDENTITY = ("-c", "user.name=hgm", "-c", "user.email=hgm@localhost", "-c", "commit.gpgsign=false")


@dataclass(frozen=True)
class Recipe:
    """How one language's exercises are tested."""

    tool: str  # must be on PATH in the image
    command: str  # shell; {tests} = the test files
    log_parser: str
    test_names: Callable[[str, str], list[str]]  # (test file path, its text) -> test ids


def _python_tests(path: str, text: str) -> list[str]:
    tree = ast.parse(text)
    names = [f"{path}::{n.name}" for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        bases = [ast.unparse(b) for b in cls.bases]
        if cls.name.startswith("Test") or any(b.endswith("TestCase") for b in bases):
            names += [
                f"{path}::{cls.name}::{f.name}"
                for f in cls.body
                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name.startswith("test")
            ]
    return names


def _go_tests(path: str, text: str) -> list[str]:
    return re.findall(r"^func (Test\w+)\(", text, re.M)


def _rust_tests(path: str, text: str) -> list[str]:
    # ignored tests are not run by `cargo test`; Exercism marks all but the first #[ignore]
    return re.findall(r"#\[test\]\s*(?:#\[ignore\]\s*)?fn (\w+)", text)


RECIPES: dict[str, Recipe] = {
    "python": Recipe("python3", '"${HGM_PYTHON:-python3}" -m pytest -rA -p no:cacheprovider {tests}',
                     "parse_log_pytest", _python_tests),
    "go": Recipe("go", "go test -v ./...", "parse_log_gotest", _go_tests),
    "rust": Recipe("cargo", "cargo test --offline -- --include-ignored", "parse_log_cargo", _rust_tests),
}


@dataclass(frozen=True)
class Exercise:
    language: str
    name: str
    path: Path
    solution: tuple[str, ...]
    tests: tuple[str, ...]
    example: tuple[str, ...]

    @property
    def instance_id(self) -> str:
        return f"polyglot__{self.language}-{self.name}"


def _read_exercise(language: str, path: Path) -> Exercise:
    where = f"{language}/exercises/practice/{path.name}"
    config_path = path / ".meta" / "config.json"
    try:
        files = json.loads(config_path.read_text())["files"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise TaskError(f"{where}/.meta/config.json: cannot read files.* ({exc.__class__.__name__})") from None
    if not (path / ".docs" / "instructions.md").is_file():
        raise TaskError(f"{where}: missing file .docs/instructions.md")
    for key in ("solution", "test", "example"):
        if not isinstance(files.get(key), list) or not files[key]:
            raise TaskError(f"{where}/.meta/config.json: field 'files.{key}' is missing or empty")
        missing = [f for f in files[key] if not (path / f).is_file()]
        if missing:
            raise TaskError(f"{where}: files.{key} names missing file {', '.join(missing)}")
    return Exercise(language, path.name, path, tuple(files["solution"]), tuple(files["test"]), tuple(files["example"]))


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise SuiteError(f"git {args[0]} failed in {cwd}: {proc.stderr.strip()[-200:]}")
    return proc.stdout


class PolyglotSuite(Suite):
    """An Aider Polyglot checkout (or any directory in its layout)."""

    kind = "polyglot"

    def __init__(
        self,
        path: str | Path,
        image: str = BASE_IMAGE,
        languages: list[str] | None = None,
        available_tools: set[str] | None = None,
        cache: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.base_image = image
        self.languages = languages
        self._tools = available_tools  # None: probe the image on first need
        self._backend: Backend | None = None
        self._probed = False  # True once _tools came from a probe (re-probe on another backend)
        self.cache = cache
        self._exercises: dict[str, Exercise] | None = None
        self._tasks: list[Task] | None = None

    # -- loading -----------------------------------------------------------------------

    def exercises(self) -> dict[str, Exercise]:
        if self._exercises is None:
            found: dict[str, Exercise] = {}
            for practice in sorted(self.path.glob("*/exercises/practice")):
                language = practice.parent.parent.name
                if self.languages and language not in self.languages:
                    continue
                for ex_dir in sorted(p for p in practice.iterdir() if (p / ".meta" / "config.json").is_file()):
                    exercise = _read_exercise(language, ex_dir)
                    found[exercise.instance_id] = exercise
            if not found:
                raise SuiteError(f"{self.path}: no exercise with .meta/config.json under */exercises/practice/")
            self._exercises = found
        return self._exercises

    def tasks(self) -> list[Task]:
        if self._tasks is None:
            self._tasks = [self._task(ex) for ex in self.exercises().values()]
        return list(self._tasks)

    def _task(self, ex: Exercise) -> Task:
        docs = ex.path / ".docs"
        statement = (docs / "instructions.md").read_text()
        if (docs / "instructions.append.md").is_file():
            statement += "\n\n" + (docs / "instructions.append.md").read_text()
        stub_names = ", ".join(ex.solution)
        statement += f"\n\nImplement the solution in {stub_names}. Keep the names the stubs define."
        recipe = RECIPES.get(ex.language)
        tests: list[str] = []
        if recipe:
            for test in ex.tests:
                try:
                    tests += recipe.test_names(test, (ex.path / test).read_text())
                except SyntaxError as exc:
                    raise TaskError(f"{ex.instance_id}: cannot parse {test} ({exc.msg})") from None
        return parse_task(
            {
                "instance_id": ex.instance_id,
                "repo": f"polyglot/{ex.language}",
                "base_commit": BASE_COMMIT,
                "problem_statement": statement,
                "patch": self._gold_patch(ex),
                "test_patch": "",
                "FAIL_TO_PASS": tests or ["(no tests found)"],
                "PASS_TO_PASS": [],
                "version": ex.language,
                "log_parser": recipe.log_parser if recipe else "parse_log_pytest",
            },
            ex.instance_id,
        )

    # -- environment -------------------------------------------------------------------

    def _workspace(self, ex: Exercise) -> Path:
        """Host git repository of the exercise without tests/.meta/.docs (cached)."""
        hidden = set(ex.tests)
        files = sorted(
            p for p in ex.path.rglob("*")
            if p.is_file() and not p.relative_to(ex.path).parts[0].startswith(".")
            and str(p.relative_to(ex.path)) not in hidden
        )
        digest = hashlib.sha256()
        for p in files:
            digest.update(str(p.relative_to(ex.path)).encode() + b"\0" + p.read_bytes())
        target = (self.cache or cache_dir()) / "polyglot" / f"{ex.instance_id}-{digest.hexdigest()[:16]}"

        def build(repo: Path) -> None:
            for p in files:
                dest = repo / p.relative_to(ex.path)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, dest)
            repo.mkdir(exist_ok=True)
            _git(repo, "init", "-q")
            _git(repo, "add", "-A")
            _git(repo, "commit", "-q", "--allow-empty", "-m", f"{ex.language}/{ex.name}: stubs")

        return cached_dir(target, build)

    def _gold_patch(self, ex: Exercise) -> str:
        workspace = self._workspace(ex)
        with tempfile.TemporaryDirectory(prefix="hgm-gold-") as tmp:
            copy = Path(tmp) / "repo"
            shutil.copytree(workspace, copy, symlinks=True)
            pairs = list(zip(ex.solution, ex.example))
            if len(ex.example) == 1 and len(ex.solution) > 1:
                pairs = [(ex.solution[0], ex.example[0])]
            for solution, example in pairs:
                target = copy / solution
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(ex.path / example, target)
            _git(copy, "add", "-A")
            return _git(copy, "diff", "--cached")

    def image(self, task: Task) -> str:
        return self.base_image

    def use_backend(self, backend: Backend) -> None:
        if backend is not self._backend:
            self._backend = backend
            self._tools = None if self._probed else self._tools

    def available_tools(self) -> set[str]:
        """Tools of the recipes present in the image, on the backend in use (probed once)."""
        if self._tools is None:
            from sandbox import get_backend
            from sandbox.api import SandboxSpec

            wanted = " ".join(sorted({r.tool for r in RECIPES.values()}))
            backend = self._backend = self._backend or get_backend("auto", self.base_image)
            self._probed = True
            try:
                with backend.open(SandboxSpec(image=self.base_image)) as box:
                    out = box.exec(f"for t in {wanted}; do command -v $t >/dev/null && echo $t; done", timeout=60)
                self._tools = set(out.stdout.split())
            except Exception:  # noqa: BLE001 - no sandbox: only what every image has
                self._tools = {"python3"}
        return self._tools

    def skip_reason(self, task: Task) -> str | None:
        language = task.version
        recipe = RECIPES.get(language)
        if recipe is None:
            return f"hgm has no test recipe for {language} exercises yet"
        if recipe.tool not in self.available_tools():
            where = self._backend.where(self.base_image) if self._backend else f"in image {self.base_image}"
            return f"{recipe.tool} ({language} toolchain) is not {where}"
        return None

    def prepare(self, session: Session, task: Task, dest: str = TESTBED) -> str:
        return put_repo(session, self._workspace(self.exercises()[task.instance_id]), dest)

    def grading_env(self, task: Task) -> GradingEnv:
        ex = self.exercises()[task.instance_id]
        recipe = RECIPES.get(ex.language)
        if recipe is None:
            raise SuiteError(f"{task.instance_id}: {self.skip_reason(task)}")
        lines = ["#!/bin/bash", "set -uxo pipefail", 'cd "${HGM_TESTBED:-/testbed}"']
        for test in ex.tests:
            encoded = base64.b64encode((ex.path / test).read_bytes()).decode()
            quoted = shlex.quote(test)
            lines += [f"mkdir -p \"$(dirname {quoted})\"", f"echo {encoded} | base64 -d > {quoted}"]
        command = recipe.command.replace("{tests}", " ".join(shlex.quote(t) for t in ex.tests))
        lines += [
            "echo '>>>>> Start Test Output'",
            command,
            "SWEBENCH_TEST_EXIT_CODE=$?",
            "echo '>>>>> End Test Output'",
            'echo ">>>>> Test Exit Code: $SWEBENCH_TEST_EXIT_CODE"',
        ]
        return GradingEnv(image=self.base_image, eval_script="\n".join(lines) + "\n", log_parser=recipe.log_parser)


__all__ = ["PolyglotSuite", "RECIPES"]
