"""Replace exact blocks of lines in a file (the agent's edit helper).

Usage: python3 replace.py FILE   with the edit on stdin:

    <<<<<<< SEARCH
    exact existing lines
    =======
    lines to put instead
    >>>>>>> REPLACE

Several blocks may follow each other. Every SEARCH text must occur exactly once in the
file (checked after the blocks before it are applied), or nothing is written and the
reason is printed. Exit codes: 0 changed, 1 a block did not match, 2 bad usage.
Stdlib only and no imports from the agent, so it runs as a plain script.
"""

from __future__ import annotations

import sys

START, MIDDLE, END = "<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE"


class ReplaceError(ValueError):
    """The edit could not be applied; the message says why."""


def parse_blocks(edit: str) -> list[tuple[str, str]]:
    """Return (search, replace) pairs; whole lines, each ending in a newline."""
    blocks: list[tuple[str, str]] = []
    state, search, replace = "outside", [], []
    for line in edit.splitlines(keepends=True):
        marker = line.rstrip("\r\n")
        if state == "outside" and marker.strip() == START:
            state, search, replace = "search", [], []
        elif state == "outside" and marker.strip():
            raise ReplaceError(f"unexpected text outside a block: {marker[:80]!r} (start blocks with {START})")
        elif state == "search" and marker == MIDDLE:
            state = "replace"
        elif state == "replace" and marker == END:
            blocks.append(("".join(search), "".join(replace)))
            state = "outside"
        elif state in ("search", "replace"):
            (search if state == "search" else replace).append(line if line.endswith("\n") else line + "\n")
    if state != "outside":
        raise ReplaceError(f"unfinished block: every {START} needs a {MIDDLE} line and a {END} line")
    if not blocks:
        raise ReplaceError(f"no {START} ... {MIDDLE} ... {END} block on stdin")
    if any(not search.strip() for search, _ in blocks):
        raise ReplaceError("a SEARCH part is empty; to write a new file use: cat > FILE <<'EOF'")
    return blocks


def line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def apply_blocks(text: str, blocks: list[tuple[str, str]]) -> str:
    """Apply each block in turn; raise ReplaceError unless each search occurs exactly once."""
    for number, (search, replace) in enumerate(blocks, 1):
        if "\r\n" in text and "\r\n" not in search:  # a heredoc cannot type CRLF line ends
            search, replace = search.replace("\n", "\r\n"), replace.replace("\n", "\r\n")
        starts, at = [], text.find(search)
        while at != -1:
            starts.append(at)
            at = text.find(search, at + 1)
        if len(starts) == 1:
            text = text[: starts[0]] + replace + text[starts[0] + len(search):]
            continue
        if starts:
            lines = ", ".join(str(line_of(text, s)) for s in starts[:10])
            raise ReplaceError(f"block {number}: the SEARCH text occurs {len(starts)} times "
                               f"(at lines {lines}); add neighbouring lines to make it unique")
        first = search.splitlines()[0].strip()
        near = [str(i) for i, line in enumerate(text.splitlines(), 1) if first and first in line][:10]
        hint = f"; its first line appears (maybe indented differently) at line(s) {', '.join(near)}" if near else ""
        raise ReplaceError(f"block {number}: the SEARCH text was not found{hint}. "
                           "Copy the lines exactly, with their indentation (see them with: nl -ba FILE)")
    return text


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[0]
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
            original = f.read()
    except OSError as err:
        print(f"replace: cannot read {path}: {err.strerror}", file=sys.stderr)
        return 2
    edit = sys.stdin.buffer.read().decode("utf-8", errors="surrogateescape")
    try:
        updated = apply_blocks(original, parse_blocks(edit))
    except ReplaceError as err:
        print(f"replace: {path}: {err}; nothing was changed", file=sys.stderr)
        return 1
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        f.write(updated)
    print(f"replace: {path}: applied {len(parse_blocks(edit))} block(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
