"""Contract tests: what hgm relies on. A self-modified agent is accepted only if these pass.

They run `python -m agent` as a subprocess, as hgm does, against a scripted model server.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from agent.tests.fake_server import FakeLLM
from agent.tests.test_shell import process_gone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds agent/
REPLACE = os.path.join(ROOT, "agent", "tools", "replace.py")
GIT_ID = ["-c", "user.name=test", "-c", "user.email=test@example.com"]

BUGGY = "def add(a, b):\n    return a - b\n"
TEST = "import unittest\nfrom calc import add\n\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"


def git(repo, *args):
    return subprocess.run(["git", *GIT_ID, *args], cwd=repo, check=True, capture_output=True)


def make_repo(path):
    os.makedirs(path)
    for name, text in (("calc.py", BUGGY), ("test_calc.py", TEST)):
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "buggy")


def run_tests(repo):
    return subprocess.run([sys.executable, "-m", "unittest", "-q"], cwd=repo, capture_output=True,
                          env={"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"})


class ContractTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.repo = os.path.join(self.tmp, "repo")
        self.out = os.path.join(self.tmp, "out")
        self.problem = os.path.join(self.tmp, "problem.txt")
        with open(self.problem, "w") as f:
            f.write("add(2, 3) returns -1 instead of 5.")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def agent(self, *args, url="/nonexistent.sock", **env):
        environ = {k: v for k, v in os.environ.items() if not k.startswith("HGM_")}
        environ.update(HGM_LLM_URL=url, HGM_LLM_MODEL="test-model", **env)
        return subprocess.run([sys.executable, "-m", "agent", *args], cwd=ROOT, env=environ,
                              capture_output=True, text=True, timeout=120)

    def solve(self, fake, *extra, **env):
        return self.agent("solve", "--problem", self.problem, "--repo", self.repo, "--out", self.out,
                          *extra, url=fake.url, **env)

    def outputs(self):
        with open(os.path.join(self.out, "result.json")) as f:
            result = json.load(f)
        with open(os.path.join(self.out, "trajectory.jsonl")) as f:
            steps = [json.loads(line) for line in f]
        with open(os.path.join(self.out, "patch.diff"), "rb") as f:
            patch = f.read()
        return result, steps, patch

    def test_solve_fixes_a_repo_and_the_patch_applies_to_a_fresh_copy(self):
        make_repo(self.repo)
        fix = ("<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n")
        script = [
            "THOUGHT: run the tests.\n```bash\npython3 -m unittest -q 2>&1 | tail -3\n```",
            f"THOUGHT: fix it.\n```bash\npython3 {REPLACE} calc.py <<'EOF'\n{fix}EOF\n```",
            "THOUGHT: add notes and a binary file.\n```bash\nmkdir -p docs && echo fixed > docs/NOTES && printf '\\000\\377' > blob.bin\n```",
            "```bash\nenv\n```",
            "```bash\nsubmit\n```",
        ]
        with FakeLLM.unix(script) as fake:
            done = self.solve(fake, HGM_LLM_TAGS='{"task": "calc-1"}', OPENAI_API_KEY="sk-secret-1",
                              ANTHROPIC_API_KEY="sk-secret-2", GITHUB_TOKEN="ghp-secret-3")
        self.assertEqual(done.returncode, 0, done.stderr)
        result, steps, patch = self.outputs()
        self.assertEqual(result["exit_reason"], "submitted")
        self.assertEqual((result["steps"], result["tokens"]), (5, 600))
        self.assertEqual([s["step"] for s in steps], [1, 2, 3, 4, 5])
        for step in steps:
            self.assertTrue({"step", "messages", "action", "observation", "tokens"} <= set(step))
        self.assertEqual(steps[1]["observation"]["exit_code"], 0)
        for request in fake.requests:
            self.assertEqual(request["body"]["model"], "test-model")
            self.assertEqual(json.loads(request["headers"]["X-HGM-Tags"]), {"task": "calc-1"})
        self.assertNotIn("sk-secret", steps[3]["observation"]["output"])
        self.assertNotIn("ghp-secret", steps[3]["observation"]["output"])
        self.assertIn("PATH=", steps[3]["observation"]["output"])

        fresh = os.path.join(self.tmp, "fresh")
        subprocess.run(["git", "clone", "-q", self.repo, fresh], check=True)
        self.assertNotEqual(run_tests(fresh).returncode, 0)
        applied = subprocess.run(["git", "apply", "--check", "-"], cwd=fresh, input=patch, capture_output=True)
        self.assertEqual(applied.returncode, 0, applied.stderr)
        subprocess.run(["git", "apply", "-"], cwd=fresh, input=patch, check=True)
        self.assertEqual(run_tests(fresh).returncode, 0)
        with open(os.path.join(fresh, "blob.bin"), "rb") as f:
            self.assertEqual(f.read(), b"\x00\xff")
        self.assertNotIn(b"__pycache__", patch)

    def test_empty_attempt_still_writes_every_file(self):
        make_repo(self.repo)
        with FakeLLM.tcp(["```bash\nsubmit\n```"]) as fake:
            done = self.solve(fake)
        self.assertEqual(done.returncode, 0, done.stderr)
        result, steps, patch = self.outputs()
        self.assertEqual((result["exit_reason"], patch, len(steps)), ("submitted", b"", 1))

    def test_output_folder_inside_the_repo_is_not_in_the_patch(self):
        make_repo(self.repo)
        self.out = os.path.join(self.repo, "agent-out")
        with FakeLLM.tcp(["```bash\necho x >> calc.py\n```", "```bash\nsubmit\n```"]) as fake:
            self.assertEqual(self.solve(fake).returncode, 0)
        _, _, patch = self.outputs()
        self.assertIn(b"calc.py", patch)
        self.assertNotIn(b"agent-out", patch)

    def test_unreachable_model_is_a_finished_attempt(self):
        make_repo(self.repo)
        done = self.agent("solve", "--problem", self.problem, "--repo", self.repo, "--out", self.out,
                          "--llm-attempts", "1", url=os.path.join(self.tmp, "no.sock"))
        self.assertEqual(done.returncode, 0, done.stderr)
        result, steps, patch = self.outputs()
        self.assertEqual((result["exit_reason"], patch), ("error", b""))
        self.assertTrue(all("llm_error" in step for step in steps))

    def test_budget_refusal_ends_as_cost_limit(self):
        make_repo(self.repo)
        budget = {"status": 429, "error": {"message": "budget exceeded", "code": "budget_exceeded"}}
        with FakeLLM.tcp([budget]) as fake:
            done = self.solve(fake, "--max-steps", "5", "--max-tokens", "1000", "--command-timeout", "5",
                              "--max-output", "500")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(self.outputs()[0]["exit_reason"], "cost_limit")

    def test_sigterm_kills_the_command_and_still_writes_the_files(self):
        make_repo(self.repo)
        marker, pidfile = os.path.join(self.tmp, "started"), os.path.join(self.tmp, "sleep.pid")
        script = [f"```bash\necho y >> calc.py; sleep 300 & echo $! > {pidfile}; touch {marker}; wait\n```"]
        environ = {k: v for k, v in os.environ.items() if not k.startswith("HGM_")}
        with FakeLLM.tcp(script) as fake:
            environ.update(HGM_LLM_URL=fake.url)
            proc = subprocess.Popen([sys.executable, "-m", "agent", "solve", "--problem", self.problem, "--repo",
                                     self.repo, "--out", self.out], cwd=ROOT, env=environ,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while not os.path.exists(marker) and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            self.assertNotEqual(proc.wait(timeout=20), 0)
        result, steps, patch = self.outputs()
        self.assertEqual(result["exit_reason"], "error")
        self.assertIn("signal", result["detail"])
        self.assertIn(b"+y", patch)
        with open(pidfile) as f:
            self.assertTrue(process_gone(int(f.read())))

    def test_improve_runs_on_the_agent_source(self):
        source = os.path.join(self.tmp, "source")
        shutil.copytree(os.path.join(ROOT, "agent"), os.path.join(source, "agent"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        git(source, "init", "-q")
        git(source, "add", "-A")
        git(source, "commit", "-qm", "agent")
        self.repo = source
        script = ["```bash\nls agent/__main__.py && echo '# tuned' >> agent/prompts.py\n```", "```bash\nsubmit\n```"]
        with FakeLLM.unix(script) as fake:
            done = self.agent("improve", "--problem", self.problem, "--repo", source, "--out", self.out,
                              url=fake.url)
        self.assertEqual(done.returncode, 0, done.stderr)
        result, steps, patch = self.outputs()
        self.assertEqual((result["exit_reason"], result["mode"]), ("submitted", "improve"))
        self.assertIn(b"+# tuned", patch)
        task = fake.requests[0]["body"]["messages"][1]["content"]
        self.assertIn("YOUR OWN source code", task)
        self.assertIn("python3 -m unittest discover -s agent/tests -t .", task)

    def test_bad_arguments_exit_2_with_one_clear_line(self):
        make_repo(self.repo)
        not_git = os.path.join(self.tmp, "plain")
        os.makedirs(not_git)
        cases = [
            (("solve", "--problem", "/no/such/file", "--repo", self.repo, "--out", self.out), "no such file"),
            (("solve", "--problem", self.problem, "--repo", not_git, "--out", self.out), "not a git work tree"),
            (("improve", "--problem", self.problem, "--repo", self.repo, "--out", self.out), "contains agent/"),
            (("solve", "--problem", self.problem, "--repo", self.repo, "--out", self.out, "--max-steps", "0"),
             "must be positive"),
            (("solve", "--repo", self.repo), "required"),
            (("solve", "--problem", self.problem, "--repo", self.repo, "--out", self.problem), "not a directory"),
        ]
        for args, fragment in cases:
            done = self.agent(*args)
            self.assertEqual(done.returncode, 2, args)
            self.assertIn(fragment, done.stderr.strip().splitlines()[-1])
            self.assertFalse(os.path.exists(self.out))
        done = self.agent("solve", "--problem", self.problem, "--repo", self.repo, "--out", self.out, url="")
        self.assertEqual(done.returncode, 2)
        self.assertIn("HGM_LLM_URL", done.stderr)

    def test_help_lists_the_contract(self):
        done = self.agent("solve", "--help")
        self.assertEqual(done.returncode, 0)
        for flag in ("--problem", "--repo", "--out", "--max-steps", "--command-timeout", "--max-output", "--max-tokens"):
            self.assertIn(flag, done.stdout)


if __name__ == "__main__":
    unittest.main()
