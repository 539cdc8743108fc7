"""Running commands: cwd persistence, timeouts that kill the group, capped and decoded output."""

import os
import resource
import shutil
import tempfile
import time
import unittest

from agent.shell import Shell, command_env


def process_gone(pid: int, wait: float = 3.0) -> bool:
    """True once `pid` no longer runs (gone, or a zombie nobody reaped)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


class ShellTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.shell = Shell(self.dir, timeout=10, max_output=1000, env=command_env(dict(os.environ)))

    def tearDown(self):
        self.shell.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_exit_code_and_output(self):
        obs = self.shell.run("echo out; echo err >&2; exit 3")
        self.assertEqual(obs["exit_code"], 3)
        self.assertIn("out", obs["output"])
        self.assertIn("err", obs["output"])
        self.assertFalse(obs["timed_out"])

    def test_cwd_persists_between_commands(self):
        os.mkdir(os.path.join(self.dir, "sub"))
        self.shell.run("cd sub")
        self.assertEqual(self.shell.run("pwd")["output"].strip(), os.path.realpath(os.path.join(self.dir, "sub")))
        self.shell.run("cd .. && exit 1")  # an exit still records where it ended
        self.assertEqual(os.path.realpath(self.shell.cwd), os.path.realpath(self.dir))

    def test_deleted_cwd_falls_back_to_start(self):
        self.shell.run("mkdir gone && cd gone")
        shutil.rmtree(os.path.join(self.dir, "gone"))
        obs = self.shell.run("pwd")
        self.assertEqual(obs["exit_code"], 0)
        self.assertEqual(os.path.realpath(obs["output"].strip()), os.path.realpath(self.dir))

    def test_survives_its_state_being_deleted(self):
        self.shell.run(f"rm -rf {self.shell.state_dir}")
        obs = self.shell.run("echo still here")
        self.assertEqual((obs["exit_code"], obs["output"].strip()), (0, "still here"))

    def test_lone_surrogates_in_a_command(self):
        obs = self.shell.run("echo 'x\ud800y'")
        self.assertEqual(obs["exit_code"], 0)
        self.assertIn("x", obs["output"])

    def test_stdin_is_empty(self):
        obs = self.shell.run("cat; echo done")
        self.assertEqual(obs["output"].strip(), "done")

    def test_timeout_kills_the_whole_group(self):
        self.shell.timeout = 0.5
        pidfile = os.path.join(self.dir, "bg.pid")
        started = time.monotonic()
        obs = self.shell.run(f"sleep 300 & echo $! > {pidfile}; echo started; sleep 300")
        self.assertTrue(obs["timed_out"])
        self.assertIsNone(obs["exit_code"])
        self.assertIn("started", obs["output"])
        self.assertLess(time.monotonic() - started, 5)
        with open(pidfile) as f:
            self.assertTrue(process_gone(int(f.read())), "background child survived the timeout")

    def test_background_children_do_not_outlive_the_step(self):
        pidfile = os.path.join(self.dir, "bg.pid")
        started = time.monotonic()
        obs = self.shell.run(f"sleep 300 & echo $! > {pidfile}; echo quick")
        self.assertEqual(obs["exit_code"], 0)
        self.assertLess(time.monotonic() - started, 5)
        with open(pidfile) as f:
            self.assertTrue(process_gone(int(f.read())))

    def test_invalid_utf8_is_replaced(self):
        obs = self.shell.run(r"printf 'ok \xff\xfe\x80 end\n'")
        self.assertEqual(obs["exit_code"], 0)
        self.assertIn("ok", obs["output"])
        self.assertIn("\ufffd", obs["output"])
        self.assertIn("end", obs["output"])

    def test_flood_is_capped_without_memory_blowup(self):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        obs = self.shell.run("echo FIRST; yes | head -c 100000000; echo; echo LAST")
        grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        self.assertEqual(obs["exit_code"], 0)
        self.assertTrue(obs["output"].startswith("FIRST"))
        self.assertTrue(obs["output"].rstrip().endswith("LAST"))
        self.assertIn("bytes of output omitted", obs["output"])
        self.assertGreater(obs["omitted_bytes"], 99_000_000)
        self.assertLess(len(obs["output"]), 1200)
        self.assertLess(grown_kb, 50_000)
        self.assertLess(time.monotonic() - started, 20)

    def test_endless_flood_times_out(self):
        self.shell.timeout = 0.3
        obs = self.shell.run("yes")
        self.assertTrue(obs["timed_out"])
        self.assertLess(len(obs["output"]), 1200)

    def test_huge_command_runs(self):
        obs = self.shell.run("cat > big.txt <<'EOF'\n" + "a" * 300_000 + "\nEOF\nwc -c < big.txt")
        self.assertEqual(obs["output"].strip(), "300001")

    def test_secrets_are_not_passed_to_commands(self):
        env = command_env({"PATH": os.environ["PATH"], "OPENAI_API_KEY": "k", "GITHUB_TOKEN": "t", "HOME": "/x"})
        self.assertEqual(set(env) & {"OPENAI_API_KEY", "GITHUB_TOKEN"}, set())
        self.assertEqual(env["HOME"], "/x")


class OutputCapTest(unittest.TestCase):
    """Head and tail at small limits (the flood tests above cover large outputs)."""

    def run_capped(self, command, limit):
        shell = Shell(tempfile.gettempdir(), timeout=10, max_output=limit, env=command_env(dict(os.environ)))
        try:
            return shell.run(command)
        finally:
            shell.close()

    def test_small_output_is_kept_whole(self):
        obs = self.run_capped("printf 'hello '; printf world", 100)
        self.assertEqual((obs["output"], obs["omitted_bytes"]), ("hello world", 0))

    def test_head_and_tail_are_kept(self):
        obs = self.run_capped("for i in $(seq 1000); do printf 0123456789; done", 10)
        self.assertEqual(obs["omitted_bytes"], 10_000 - 10)
        self.assertTrue(obs["output"].startswith("01234\n[... 9990 bytes of output omitted ...]\n"))
        self.assertTrue(obs["output"].endswith("56789"))

    def test_odd_limit_keeps_the_extra_byte_in_the_tail(self):
        obs = self.run_capped("printf abcdefghij", 3)
        self.assertEqual(obs["output"], "a\n[... 7 bytes of output omitted ...]\nij")


if __name__ == "__main__":
    unittest.main()
