"""The exact-string replace helper the agent documents in its prompt."""

import os
import subprocess
import sys
import tempfile
import unittest

from agent.tools.replace import ReplaceError, apply_blocks, parse_blocks

TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "replace.py")


def edit(old: str, new: str) -> str:
    return f"<<<<<<< SEARCH\n{old}=======\n{new}>>>>>>> REPLACE\n"


class ReplaceTest(unittest.TestCase):
    def test_replaces_exactly_one_occurrence(self):
        text = "a\n    b = 1\nc\n"
        self.assertEqual(apply_blocks(text, parse_blocks(edit("    b = 1\n", "    b = 2\n"))), "a\n    b = 2\nc\n")

    def test_several_blocks_apply_in_order(self):
        blocks = parse_blocks(edit("a\n", "x\n") + edit("x\n", "y\n"))
        self.assertEqual(apply_blocks("a\nb\n", blocks), "y\nb\n")

    def test_crlf_files_keep_their_line_ends(self):
        self.assertEqual(apply_blocks("a\r\nb\r\n", parse_blocks(edit("b\n", "c\n"))), "a\r\nc\r\n")

    def test_missing_text_fails_with_a_hint(self):
        with self.assertRaisesRegex(ReplaceError, "not found.*line"):
            apply_blocks("def f():\n    return 1\n", parse_blocks(edit("\treturn 1\n", "\treturn 2\n")))

    def test_ambiguous_text_fails(self):
        with self.assertRaisesRegex(ReplaceError, "occurs more than once"):
            apply_blocks("x = 1\nx = 1\n", parse_blocks(edit("x = 1\n", "x = 2\n")))
        with self.assertRaisesRegex(ReplaceError, "occurs more than once"):  # overlapping occurrences
            apply_blocks("x\nx\nx\n", parse_blocks(edit("x\nx\n", "y\n")))

    def test_malformed_edits_fail(self):
        for bad, reason in (("", "no <<<<<<< SEARCH"), ("just text\n", "outside a block"),
                            ("<<<<<<< SEARCH\na\n", "outside a block"), (edit("\n", "x\n"), "SEARCH part is empty"),
                            (edit("a\n", "b\n") + "trailing words\n", "outside a block")):
            with self.assertRaisesRegex(ReplaceError, reason):
                parse_blocks(bad)

    def test_an_empty_replace_deletes_the_lines(self):
        self.assertEqual(apply_blocks("a\nb\nc\n", parse_blocks(edit("b\n", ""))), "a\nc\n")

    def test_command_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "f.py")
            with open(path, "w") as f:
                f.write("x = 1\ny = 2\n")
            ok = subprocess.run([sys.executable, TOOL, path], input=edit("y = 2\n", "y = 3\n"),
                                capture_output=True, text=True)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            with open(path) as f:
                self.assertEqual(f.read(), "x = 1\ny = 3\n")
            bad = subprocess.run([sys.executable, TOOL, path], input=edit("z\n", "w\n"),
                                 capture_output=True, text=True)
            self.assertEqual(bad.returncode, 1)
            self.assertIn("nothing was changed", bad.stderr)
            with open(path) as f:
                self.assertEqual(f.read(), "x = 1\ny = 3\n")
            missing = subprocess.run([sys.executable, TOOL, os.path.join(tmp, "nope")], input="",
                                     capture_output=True, text=True)
            self.assertEqual(missing.returncode, 2)


if __name__ == "__main__":
    unittest.main()
