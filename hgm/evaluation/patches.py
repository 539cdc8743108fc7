"""Reading a candidate patch (a `git diff`): its files, the scripts it adds, its changed lines.

Pure functions over untrusted text: a malformed diff yields fewer sections, never an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SECTION = re.compile(r"^diff --git a/(\S+) b/(\S+)\s*$", re.MULTILINE)
_TEST_FILE = re.compile(r"(^|/)(test_[^/]*|[^/]*_test|conftest)\.py$")
_TEST_DIR = re.compile(r"(^|/)(tests?|testing)/")


@dataclass(frozen=True)
class FileChange:
    """One file of a patch: its path, whether the patch creates it, its +/- lines."""

    path: str
    added_file: bool
    removed: tuple[str, ...]
    added: tuple[str, ...]

    @property
    def content(self) -> str:
        """The file's whole text when the patch creates it (its added lines)."""
        return "".join(line + "\n" for line in self.added)


def file_changes(patch: str) -> list[FileChange]:
    """The files of a git diff, in order (binary sections have no lines)."""
    matches = list(_SECTION.finditer(patch))
    changes = []
    for i, match in enumerate(matches):
        body = patch[match.end() : matches[i + 1].start() if i + 1 < len(matches) else len(patch)]
        head, _, hunks = body.partition("\n@@")
        removed, added = [], []
        for line in ("@@" + hunks).splitlines() if hunks else ():
            if line.startswith("+") and not line.startswith("+++ "):
                added.append(line[1:])
            elif line.startswith("-") and not line.startswith("--- "):
                removed.append(line[1:])
        created = "new file mode" in head or "--- /dev/null" in head
        changes.append(FileChange(match.group(2), created, tuple(removed), tuple(added)))
    return changes


def is_test_path(path: str) -> bool:
    """Whether a repository path looks like a test file (or test support)."""
    return bool(_TEST_FILE.search(path)) or (bool(_TEST_DIR.search(path)) and path.endswith(".py"))


def source_lines(changes: list[FileChange], skip: set[str] = frozenset()) -> frozenset[tuple[str, str, str]]:
    """The patch's changes to non-test files as (path, '+'|'-', stripped line), blank lines left out.

    `skip` names files to leave out (e.g. the agent's own reproduction scripts).
    """
    lines = set()
    for change in changes:
        if change.path in skip or is_test_path(change.path):
            continue
        lines.update((change.path, "-", text.strip()) for text in change.removed if text.strip())
        lines.update((change.path, "+", text.strip()) for text in change.added if text.strip())
    return frozenset(lines)
