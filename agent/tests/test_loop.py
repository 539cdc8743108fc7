"""The loop against a scripted model: every bad input is reported to the model, never raised."""

import json
import os
import shutil
import tempfile
import unittest
from types import SimpleNamespace

from agent import prompts
from agent.llm import LLMClient
from agent.loop import run
from agent.shell import Shell, command_env
from agent.tests.fake_server import FakeLLM

BUDGET = {"status": 429, "error": {"message": "budget exceeded for task t1", "code": "budget_exceeded"}}


def bash(command: str) -> str:
    return f"THOUGHT: next.\n```bash\n{command}\n```"


def limits(**overrides) -> SimpleNamespace:
    """The limits the command line passes (its defaults, but 10 steps)."""
    values = {"max_steps": 10, "max_tokens": 200_000, "llm_attempts": 3, "command_timeout": 60.0, "max_output": 10_000}
    return SimpleNamespace(**{**values, **overrides})


def new_outcome() -> dict:
    return {"exit_reason": "", "steps": 0, "tokens": 0, "prompt_tokens": 0, "completion_tokens": 0, "detail": ""}


class LoopTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.records = []

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_script(self, script, **overrides):
        given = limits(**overrides)
        messages = prompts.initial_messages("solve", "fix it", self.dir, "replace.py", 5, 1000)
        shell = Shell(self.dir, given.command_timeout, given.max_output, command_env(dict(os.environ)))
        outcome = new_outcome()
        with FakeLLM.tcp(script) as fake:
            llm = LLMClient(fake.url, "m", timeout=5)
            try:
                run(messages, llm, shell, given, self.records.append, outcome)
            finally:
                shell.close()
        self.requests = fake.requests
        for entry in self.records:
            json.dumps(entry)  # every record must be serialisable
        return SimpleNamespace(**outcome)

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
        outcome = self.run_script([{"status": 500}, {"raw": "garbage"}, "", {"status": 503}, bash("submit")])
        self.assertEqual((outcome.exit_reason, outcome.steps), ("submitted", 5))
        self.assertEqual([("llm_error" in r, "format_error" in r) for r in self.records],
                         [(True, False), (True, False), (False, True), (True, False), (False, False)])
        self.assertIn("empty", self.records[2]["format_error"])
        roles = [m["role"] for r in self.records for m in r["messages"]]  # a failed call adds no message
        self.assertEqual(roles, ["system", "user", "assistant", "user", "assistant"])

    def test_failures_in_a_row_end_with_error(self):
        outcome = self.run_script([{"status": 500}] * 20)
        self.assertEqual((outcome.exit_reason, outcome.steps, len(self.requests)), ("error", 3, 3))
        self.assertIn("HTTP 500", outcome.detail)
        self.records.clear()
        outcome = self.run_script([{"status": 500}, bash("submit")], llm_attempts=1)
        self.assertEqual((outcome.exit_reason, outcome.steps), ("error", 1))

    def test_connection_refused_ends_with_error(self):
        messages = prompts.initial_messages("solve", "fix it", self.dir, "replace.py", 5, 1000)
        shell = Shell(self.dir, 5, 1000, {})
        llm = LLMClient(os.path.join(self.dir, "nothing.sock"), "m")
        outcome = new_outcome()
        run(messages, llm, shell, limits(), self.records.append, outcome)
        shell.close()
        self.assertEqual((outcome["exit_reason"], outcome["steps"]), ("error", 3))
        self.assertIn("cannot reach", outcome["detail"])

    def test_command_timeout_is_reported(self):
        outcome = self.run_script([bash("echo begun; sleep 60"), bash("submit")], command_timeout=0.5)
        self.assertEqual(outcome.exit_reason, "submitted")
        self.assertIn("killed after 0.5 seconds", self.last_user_message(1))
        self.assertIn("begun", self.last_user_message(1))
        self.assertTrue(self.records[0]["observation"]["timed_out"])


if __name__ == "__main__":
    unittest.main()
