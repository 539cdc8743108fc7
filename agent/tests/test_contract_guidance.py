"""Contract: `--guidance FILE` puts strategy notes into the first prompt; without it nothing changes.

Like test_contract.py, these run `python -m agent` as a subprocess against a scripted model server.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from agent.tests.fake_server import FakeLLM
from agent.tests.test_contract import ROOT, git, make_repo

GUIDANCE = "Run the failing test first.\nKeep each fix to the smallest change {that works}."
HEADING = "Guidance from earlier attempts"


class GuidanceContractTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.repo = os.path.join(self.tmp, "repo")
        self.out = os.path.join(self.tmp, "out")
        self.problem = os.path.join(self.tmp, "problem.txt")
        self.guidance = os.path.join(self.tmp, "guidance.md")
        with open(self.problem, "w") as f:
            f.write("add(2, 3) returns -1 instead of 5.")
        with open(self.guidance, "w") as f:
            f.write(GUIDANCE + "\n")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def agent(self, mode, *extra, url="/nonexistent.sock"):
        environ = {k: v for k, v in os.environ.items() if not k.startswith("HGM_")}
        environ.update(HGM_LLM_URL=url, HGM_LLM_MODEL="test-model")
        args = [mode, "--problem", self.problem, "--repo", self.repo, "--out", self.out, *extra]
        return subprocess.run([sys.executable, "-m", "agent", *args], cwd=ROOT, env=environ,
                              capture_output=True, text=True, timeout=120)

    def first_messages(self, mode, *extra):
        with FakeLLM.tcp(["```bash\nsubmit\n```"]) as fake:
            done = self.agent(mode, *extra, url=fake.url)
        self.assertEqual(done.returncode, 0, done.stderr)
        return fake.requests[0]["body"]["messages"]

    def agent_source_repo(self):
        shutil.copytree(os.path.join(ROOT, "agent"), os.path.join(self.repo, "agent"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        git(self.repo, "init", "-q")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "agent")

    def test_solve_puts_the_guidance_after_the_task(self):
        make_repo(self.repo)
        system, task = self.first_messages("solve", "--guidance", self.guidance)
        self.assertIn(GUIDANCE, task["content"])
        self.assertLess(task["content"].index("add(2, 3) returns -1"), task["content"].index(HEADING))
        self.assertNotIn(GUIDANCE, system["content"])

    def test_improve_takes_guidance_too(self):
        self.agent_source_repo()
        _, task = self.first_messages("improve", "--guidance", self.guidance)
        self.assertIn("YOUR OWN source code", task["content"])
        self.assertIn(GUIDANCE, task["content"])

    def test_without_guidance_the_first_prompt_has_no_guidance_section(self):
        make_repo(self.repo)
        plain = self.first_messages("solve")
        self.assertNotIn(HEADING, plain[0]["content"] + plain[1]["content"])
        shutil.rmtree(self.out)
        with open(self.guidance, "w") as f:
            f.write("  \n")  # blank guidance is no guidance
        self.assertEqual(self.first_messages("solve", "--guidance", self.guidance), plain)

    def test_missing_guidance_file_exits_2_with_one_line(self):
        make_repo(self.repo)
        for mode in ("solve", "improve"):
            done = self.agent(mode, "--guidance", os.path.join(self.tmp, "missing.md"))
            self.assertEqual(done.returncode, 2, mode)
            self.assertIn("--guidance", done.stderr.strip().splitlines()[-1])
            self.assertIn("no such file", done.stderr.strip().splitlines()[-1])
            self.assertFalse(os.path.exists(self.out))

    def test_help_lists_guidance(self):
        for mode in ("solve", "improve"):
            self.assertIn("--guidance", self.agent(mode, "--help").stdout)


if __name__ == "__main__":
    unittest.main()
