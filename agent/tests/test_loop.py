"""The loop against a scripted model: every bad input is reported to the model, never raised."""

import json
import os
import shutil
import tempfile
import unittest

from agent import prompts
from agent.llm import LLMClient
from agent.loop import Limits, Outcome, run
from agent.shell import Shell, command_env
from agent.tests.fake_server import FakeLLM

BUDGET = {"status": 429, "error": {"message": "budget exceeded for task t1", "code": "budget_exceeded"}}


def bash(command: str) -> str:
    return f"THOUGHT: next.\n```bash\n{command}\n```"


class LoopTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.records = []

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_script(self, script, **limits):
        limits.setdefault("max_steps", 10)
        limits = Limits(**limits)
        messages = prompts.initial_messages("solve", "fix it", self.dir, "replace.py", 5, 1000)
        shell = Shell(self.dir, limits.command_timeout, limits.max_output, command_env(dict(os.environ)))
        with FakeLLM.tcp(script) as fake:
            llm = LLMClient(fake.url, "m", attempts=2, backoff=0, timeout=5)
            try:
                outcome = run(messages, llm, shell, limits, self.records.append, Outcome("error"))
            finally:
                shell.close()
        self.requests = fake.requests
        for entry in self.records:
            json.dumps(entry)  # every record must be serialisable
        return outcome

    def last_user_message(self, request_index):
        return self.requests[request_index]["body"]["messages"][-1]["content"]

    def test_runs_commands_and_submits(self):
        outcome = self.run_script([bash("echo hi > f.txt && cat f.txt"), bash("submit")])
        self.assertEqual((outcome.exit_reason, outcome.steps, outcome.tokens), ("submitted", 2, 240))
        self.assertIn("Exit code: 0", self.last_user_message(1))
        self.assertIn("hi", self.last_user_message(1))
        self.assertEqual([r["action"] for r in self.records], ["echo hi > f.txt && cat f.txt", "submit"])
        roles = [m["role"] for r in self.records for m in r["messages"]]
        self.assertEqual(roles, ["system", "user", "assistant", "user", "assistant"])

    def test_format_errors_are_told_to_the_model(self):
        script = ["no action", bash("ls") + "\n" + bash("pwd"), "```python\nx\n```", "```bash\nls",
                  "```bash\n\n```", bash("submit")]
        outcome = self.run_script(script)
        self.assertEqual((outcome.exit_reason, outcome.steps), ("submitted", 6))
        for index, fragment in enumerate(["No action", "2 bash blocks", "Unknown action", "unclosed", "empty"], 1):
            self.assertIn(fragment, self.last_user_message(index))
            self.assertIn("could not be run", self.last_user_message(index))

    def test_megabyte_reply_is_refused_and_not_kept_whole(self):
        outcome = self.run_script(["x" * 1_000_000 + "\n" + bash("touch ran"), bash("submit")])
        self.assertEqual(outcome.exit_reason, "submitted")
        self.assertIn("characters long", self.last_user_message(1))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "ran")))
        self.assertLess(len(json.dumps(self.requests[1]["body"])), 200_000)

    def test_step_limit_with_a_warning(self):
        outcome = self.run_script([bash("true")] * 5, max_steps=3)
        self.assertEqual((outcome.exit_reason, outcome.steps), ("step_limit", 3))
        self.assertIn("2 step(s) left", self.last_user_message(1))

    def test_token_limit(self):
        outcome = self.run_script([bash("true")] * 5, max_tokens=300)
        self.assertEqual((outcome.exit_reason, outcome.steps, outcome.tokens), ("cost_limit", 3, 360))

    def test_budget_refusal_stops_as_cost_limit(self):
        outcome = self.run_script([bash("true"), BUDGET])
        self.assertEqual((outcome.exit_reason, outcome.steps), ("cost_limit", 2))
        self.assertIn("budget exceeded", outcome.detail)
        self.assertEqual(len(self.requests), 2)

    def test_refused_call_stops(self):
        outcome = self.run_script([{"status": 403, "error": {"message": "unknown model alias"}}])
        self.assertEqual(outcome.exit_reason, "model_refused")

    def test_transient_failures_cost_steps_then_recover(self):
        outcome = self.run_script([{"status": 500}, {"status": 500}, {"raw": "garbage"}, "", bash("submit")])
        self.assertEqual((outcome.exit_reason, outcome.steps), ("submitted", 3))
        self.assertIn("llm_error", self.records[0])
        self.assertIn("empty", self.records[1]["format_error"])

    def test_persistent_failures_end_with_error(self):
        outcome = self.run_script([{"status": 500}] * 20)
        self.assertEqual((outcome.exit_reason, outcome.steps), ("error", 3))
        self.assertEqual(len(self.requests), 6)

    def test_connection_refused_ends_with_error(self):
        limits = Limits(max_steps=10)
        messages = prompts.initial_messages("solve", "fix it", self.dir, "replace.py", 5, 1000)
        shell = Shell(self.dir, 5, 1000, {})
        llm = LLMClient(os.path.join(self.dir, "nothing.sock"), "m", attempts=1, backoff=0)
        outcome = run(messages, llm, shell, limits, self.records.append, Outcome("error"))
        shell.close()
        self.assertEqual(outcome.exit_reason, "error")
        self.assertIn("cannot reach", outcome.detail)

    def test_command_timeout_is_reported(self):
        outcome = self.run_script([bash("echo begun; sleep 60"), bash("submit")], command_timeout=0.5)
        self.assertEqual(outcome.exit_reason, "submitted")
        self.assertIn("killed after 0.5 seconds", self.last_user_message(1))
        self.assertIn("begun", self.last_user_message(1))
        self.assertTrue(self.records[0]["observation"]["timed_out"])


if __name__ == "__main__":
    unittest.main()
