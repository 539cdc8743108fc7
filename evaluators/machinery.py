"""Test machinery in a patch: find it, and strip or reject it before grading.

A patch can make failing tests pass without fixing anything by changing how tests run
or are reported rather than the code under test: a `conftest.py` hook that rewrites
failed reports, pytest/tox configuration (`addopts = -p plugin`, `python_files`), a
`*.pth` file or `sitecustomize.py` that runs at interpreter start, or edits to the files
the hidden tests (and their fixtures) live in. An evolutionary search optimises exactly
what it is scored on, so by default grading removes those parts of the patch before it
is applied (`strip`); `reject` scores such a patch unresolved; `allow` grades it as
written (knowingly). Either way the evaluation carries the flag `machinery:<mode>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

MODES = ("strip", "reject", "allow")
DEFAULT_MODE = "strip"
FLAG_PREFIX = "machinery:"  # archive flag: machinery:strip | machinery:reject | machinery:allow

# files that only exist to change how Python or pytest runs
HOOK_NAMES = frozenset({"conftest.py", "pytest.ini", ".pytest.ini", "tox.ini", "sitecustomize.py", "usercustomize.py"})
HOOK_SUFFIXES = (".pth",)
# top-level modules that would shadow the test runner (`python -m pytest` puts the repo first)
RUNNER_SHADOWS = frozenset({"pytest.py", "pytest", "_pytest", "pluggy", "py.py"})
# files that mix test configuration with other settings: only test-related changes count
MIXED_CONFIG_NAMES = frozenset({"setup.cfg", "pyproject.toml"})
TEST_CONFIG_WORDS = re.compile(
    r"pytest|addopts|testpaths|python_files|python_classes|python_functions|norecursedirs|usefixtures"
    r"|confcutdir|filterwarnings|required_plugins|\btox\b|\[testenv",
    re.IGNORECASE,
)
# directories next to a hidden test that hold its data
FIXTURE_DIRS = ("fixtures", "testdata", "test_data", "data")

_SECTION = re.compile(r"^diff --git ", re.MULTILINE)
_GIT_HEADER = re.compile(r"^diff --git (\S+) (\S+)", re.MULTILINE)
_RENAME = re.compile(r"^(?:rename|copy) (?:from|to) (.+)$", re.MULTILINE)
_OLD_NEW = re.compile(r"^(?:---|\+\+\+) (?:[ab]/)?(.+?)\t?$", re.MULTILINE)


@dataclass(frozen=True)
class FileSection:
    """The part of a patch about one file."""

    paths: tuple[str, ...]  # every path it names (old and new side), without a/ b/ prefixes
    text: str


@dataclass(frozen=True)
class Screened:
    """A patch split into what grading may apply and the test machinery it touched."""

    kept: str  # the patch without the machinery sections
    touched: tuple[tuple[str, str], ...]  # (path, why) of every machinery section

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.touched]

    def describe(self) -> str:
        return ", ".join(f"{path} ({why})" for path, why in self.touched)


def _strip(path: str) -> str:
    path = path.strip().strip('"')
    return path[2:] if path[:2] in ("a/", "b/") else path


def split_patch(patch: str) -> tuple[str, list[FileSection]]:
    """(preamble, one section per file) of a git diff; a non-git diff is one section."""
    starts = [m.start() for m in _SECTION.finditer(patch)]
    if not starts:
        return "", ([FileSection(section_paths(patch), patch)] if patch.strip() else [])
    bounds = starts + [len(patch)]
    sections = [patch[a:b] for a, b in zip(bounds, bounds[1:])]
    return patch[: starts[0]], [FileSection(section_paths(text), text) for text in sections]


def section_paths(text: str) -> tuple[str, ...]:
    """Every file path one section of a diff names."""
    paths: list[str] = []
    for old, new in _GIT_HEADER.findall(text):
        paths += [_strip(old), _strip(new)]
    paths += [p.strip() for p in _RENAME.findall(text)]
    paths += [_strip(p) for p in _OLD_NEW.findall(text) if p != "/dev/null"]
    return tuple(dict.fromkeys(p for p in paths if p and p != "dev/null"))


@dataclass(frozen=True)
class HiddenTests:
    """Where a task's hidden tests live: their files and their fixture directories."""

    files: frozenset[str]
    fixture_dirs: tuple[str, ...]

    @classmethod
    def of_test_patch(cls, test_patch: str) -> "HiddenTests":
        files: set[str] = set()
        for section in split_patch(test_patch)[1]:
            files.update(section.paths)
        dirs = {str(PurePosixPath(f).parent) for f in files}
        fixture_dirs = tuple(sorted(f"{d}/{name}/" if d != "." else f"{name}/" for d in dirs for name in FIXTURE_DIRS))
        package_inits = {f"{d}/__init__.py" for d in dirs if d != "."}
        return cls(frozenset(files | package_inits), fixture_dirs)

    def holds(self, path: str) -> bool:
        return path in self.files or path.startswith(self.fixture_dirs)


def machinery_reason(section: FileSection, hidden: HiddenTests | None = None) -> str | None:
    """Why this section of a patch is test machinery, or None."""
    for path in section.paths:
        name = PurePosixPath(path).name
        if name in HOOK_NAMES or name.endswith(HOOK_SUFFIXES):
            return "test hook or configuration"
        if PurePosixPath(path).parts[:1] and PurePosixPath(path).parts[0] in RUNNER_SHADOWS:
            return "shadows the test runner"
        if hidden is not None and hidden.holds(path):
            return "hidden test file or fixture"
    for path in section.paths:
        if PurePosixPath(path).name in MIXED_CONFIG_NAMES and _changes_test_config(section.text):
            return "test configuration"
    return None


def _changes_test_config(text: str) -> bool:
    """True when a hunk of a setup.cfg/pyproject.toml section mentions test settings."""
    in_hunk = False
    for line in text.splitlines():
        if line.startswith("@@"):
            in_hunk = True
            if TEST_CONFIG_WORDS.search(line):
                return True
        elif in_hunk and line[:1] in ("+", "-", " ") and TEST_CONFIG_WORDS.search(line):
            return True
    return False


def screen(patch: str, test_patch: str = "") -> Screened:
    """Split `patch` into the sections grading may apply and the test machinery it touches.

    `test_patch` (the task's hidden tests) marks the files those tests and their
    fixtures live in as machinery too.
    """
    hidden = HiddenTests.of_test_patch(test_patch) if test_patch.strip() else None
    preamble, sections = split_patch(patch)
    kept, touched = [], []
    for section in sections:
        why = machinery_reason(section, hidden)
        if why is None:
            kept.append(section.text)
        else:
            touched.append((section.paths[-1] if section.paths else "?", why))
    if not touched:
        return Screened(patch, ())
    body = "".join(kept)
    return Screened(preamble + body if body.strip() else "", tuple(touched))


def check_mode(mode: str) -> str:
    """`mode` if it is one of MODES, else ValueError with the choices."""
    if mode not in MODES:
        raise ValueError(f"unknown test-machinery mode {mode!r}; use one of {', '.join(MODES)}")
    return mode


def flag(mode: str) -> str:
    return FLAG_PREFIX + mode


__all__ = ["DEFAULT_MODE", "FLAG_PREFIX", "HiddenTests", "MODES", "Screened", "check_mode", "flag", "screen", "split_patch"]
