"""Usage: python3 replace.py FILE, with <<<<<<< SEARCH / ======= / >>>>>>> REPLACE blocks on stdin.

Each block's SEARCH lines must occur exactly once in FILE (after the blocks before it are
applied), or nothing is written. Exit code 0: changed, 1: a block did not match, 2: bad usage.
"""

from __future__ import annotations

import re
import sys

BLOCK = re.compile(r"^[ \t]*<<<<<<< SEARCH[ \t]*\n(.*?)^=======\n(.*?)^>>>>>>> REPLACE[ \t]*$\n?", re.S | re.M)


class ReplaceError(ValueError):
    """The edit could not be applied; the message says why."""


def parse_blocks(edit: str) -> list[tuple[str, str]]:
    """Return the (search, replace) pairs of `edit`: whole lines, each ending in a newline."""
    stray = BLOCK.sub("", edit).strip()
    if stray:
        raise ReplaceError(f"unexpected text outside a block: {stray.splitlines()[0][:80]!r} "
                           "(each block is SEARCH lines, =======, REPLACE lines, each marker on its own line)")
    blocks = BLOCK.findall(edit)
    if not blocks:
        raise ReplaceError("no <<<<<<< SEARCH ... ======= ... >>>>>>> REPLACE block on stdin")
    if any(not search.strip() for search, _ in blocks):
        raise ReplaceError("a SEARCH part is empty; to write a new file use: cat > FILE <<'EOF'")
    return blocks


def apply_blocks(text: str, blocks: list[tuple[str, str]]) -> str:
    """Apply each block in turn; raise ReplaceError unless each search occurs exactly once."""
    for number, (search, replace) in enumerate(blocks, 1):
        if "\r\n" in text and "\r\n" not in search:  # a heredoc cannot type CRLF line ends
            search, replace = search.replace("\n", "\r\n"), replace.replace("\n", "\r\n")
        at = text.find(search)
        if at == -1:
            first = search.strip().splitlines()[0].strip()
            near = [str(i) for i, line in enumerate(text.splitlines(), 1) if first in line][:10]
            hint = f"; its first line appears (maybe indented differently) at line(s) {', '.join(near)}" if near else ""
            raise ReplaceError(f"block {number}: the SEARCH text was not found{hint}. "
                               "Copy the lines exactly, with their indentation (see them with: nl -ba FILE)")
        if text.find(search, at + 1) != -1:
            raise ReplaceError(f"block {number}: the SEARCH text occurs more than once; "
                               "add neighbouring lines to make it unique")
        text = text[:at] + replace + text[at + len(search):]
    return text


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(argv[0], encoding="utf-8", errors="surrogateescape", newline="") as f:
            original = f.read()
        blocks = parse_blocks(sys.stdin.buffer.read().decode("utf-8", errors="surrogateescape"))
        updated = apply_blocks(original, blocks)
    except OSError as err:
        print(f"replace: cannot read {argv[0]}: {err.strerror}", file=sys.stderr)
        return 2
    except ReplaceError as err:
        print(f"replace: {argv[0]}: {err}; nothing was changed", file=sys.stderr)
        return 1
    with open(argv[0], "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        f.write(updated)
    print(f"replace: {argv[0]}: applied {len(blocks)} block(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
