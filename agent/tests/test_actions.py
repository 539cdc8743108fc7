"""Parsing untrusted model replies into one action."""

import time
import unittest

from agent.actions import FormatError, parse_action


class ParseActionTest(unittest.TestCase):
    def test_one_bash_block_is_the_action(self):
        action = parse_action("THOUGHT: look around.\n```bash\nls -la\ncat x\n```\n")
        self.assertEqual(action.command, "ls -la\ncat x")
        self.assertFalse(action.is_submit)

    def test_submit_ends(self):
        self.assertTrue(parse_action("Done.\n```bash\n  submit \n```").is_submit)
        self.assertFalse(parse_action("```bash\nsubmit && ls\n```").is_submit)

    def test_other_languages_are_quotes_not_actions(self):
        reply = "The code:\n```python\nx = 1\n```\nNow run:\n```bash\npython3 x.py\n```"
        self.assertEqual(parse_action(reply).command, "python3 x.py")

    def assertRejected(self, reply, *fragments):
        with self.assertRaises(FormatError) as caught:
            parse_action(reply)
        for fragment in fragments:
            self.assertIn(fragment, str(caught.exception))

    def test_no_action(self):
        self.assertRejected("I think the bug is in foo.py.", "No action")

    def test_empty_reply(self):
        self.assertRejected("   \n", "empty")

    def test_two_actions(self):
        self.assertRejected("```bash\nls\n```\nand\n```bash\npwd\n```", "2 bash blocks")

    def test_unknown_action(self):
        self.assertRejected("```python\nprint(1)\n```", "Unknown action", "python")
        self.assertRejected("```\nls\n```", "Unknown action", "(no language)")

    def test_empty_action(self):
        self.assertRejected("```bash\n\n   \n```", "empty")

    def test_unbalanced_fences(self):
        self.assertRejected("```bash\nls -la\n", "unclosed")
        self.assertRejected("```bash\nls\n```\n```bash\npwd", "unclosed")

    def test_megabyte_reply_is_parsed_quickly(self):
        reply = "x" * 1_000_000 + "\n```bash\necho ok\n```\n" + "y\n" * 1000
        started = time.monotonic()
        self.assertEqual(parse_action(reply).command, "echo ok")
        self.assertRejected("```bash\n" + "z" * 1_000_000, "unclosed")
        self.assertLess(time.monotonic() - started, 2.0)


if __name__ == "__main__":
    unittest.main()
