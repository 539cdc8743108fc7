"""Crash soak: SIGKILL a scripted `hgm` evolution at random moments, resume after each kill.

`soak(root, kills=N, seed=S)` starts `hgm run` (scripted model, mini suite), kills the
hgm process with SIGKILL at N seeded moments spread over the phases of a run, and
resumes after each; whenever a session finishes its budget before the next kill, the
budget is raised (`hgm resume --budget-evals`), so every kill lands in a live run. A
final resume completes the run. Only the hgm process is killed, as a real crash would:
its sandboxes, agent processes, temp files and sockets stay behind for the next
`hgm resume` to clean up.

Phases (how the moment is found):
  start-up     a random delay after the process starts (before or during set-up);
  evaluation   an agent is solving a task (a `solve` model call is recorded), plus a delay;
  expansion    a diagnosis or self-improvement call is recorded, plus a delay;
  acceptance   the child's own tests run (a `unittest` process of the run, or an acceptance
               sandbox container: `agent-tests`, or `vet` where the admission gate runs them);
  archive      the moment a new row appears in hgm.db (a few milliseconds later);
  random       (only when two sessions in a row finished before their phase came) any
               moment from 1 to 10 s into the next session.

After each kill, the processes and containers the killed session left are noted; once
the next session has started (its `session_start` event is in hgm.db) none of them may
be left. At the end (`SoakReport.problems()` must be empty): the database passes SQLite's
integrity check; the measured evaluations equal the final budget; no (node, task) pair is
measured twice; every measured evaluation seen after a kill is still there; every node has
its branch and every branch its node; no sandbox container, process, temp file or gateway
socket of the run is left.

Used by `tests/e2e/test_soak.py` (a few kills, in CI) and `benchmarks/soak.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from scripted import write_script

REPO = Path(__file__).resolve().parents[2]
TASKS = ",".join(f"hgm-mini__iniconf-{i}" for i in range(1, 7))
PHASES = ("start-up", "evaluation", "expansion", "acceptance", "archive")
ACCEPTANCE_PURPOSES = ("agent-tests", "vet")  # sandbox purposes of a child's own tests


@dataclass
class SoakReport:
    kills_planned: int
    kills: list[dict] = field(default_factory=list)  # one per kill delivered: phase, waited, found rows
    sessions: int = 0  # hgm processes started
    finished_early: int = 0  # sessions that finished before their kill (budget raised, killed in the next)
    failed_resumes: list[str] = field(default_factory=list)
    budget: int = 0
    measured: int = 0
    duplicates: int = 0
    lost: int = 0  # measured evaluations seen after a kill, missing at the end
    integrity: str = ""
    nodes: int = 0
    branch_mismatch: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    orphans: int = 0  # processes and containers a kill left behind (reaped by the next session)
    not_reaped: list[str] = field(default_factory=list)  # ... still there once the next session ran
    final_status: str = ""
    elapsed_s: float = 0.0

    @property
    def survived(self) -> int:
        """Kills after which the next `hgm resume` opened the run and went on."""
        return len(self.kills) - len(self.failed_resumes)

    def problems(self) -> list[str]:
        found = []
        if len(self.kills) < self.kills_planned:
            found.append(f"only {len(self.kills)} of {self.kills_planned} kills were delivered")
        found += [f"resume failed: {f}" for f in self.failed_resumes]
        if self.integrity != "ok":
            found.append(f"integrity check: {self.integrity}")
        if self.measured != self.budget:
            found.append(f"{self.measured} measured evaluations, budget {self.budget}")
        if self.duplicates:
            found.append(f"{self.duplicates} (node, task) pairs measured twice")
        if self.lost:
            found.append(f"{self.lost} evaluations lost")
        found += [f"branches: {m}" for m in self.branch_mismatch]
        found += [f"left behind: {x}" for x in self.leftovers]
        found += [f"not removed by the next session: {x}" for x in self.not_reaped]
        if self.final_status != "finished":
            found.append(f"final status {self.final_status!r}")
        return found

    def figures(self) -> dict:
        by_phase: dict[str, int] = {}
        for kill in self.kills:
            by_phase[kill["phase"]] = by_phase.get(kill["phase"], 0) + 1
        return {
            "kills": len(self.kills), "kills_survived": self.survived, "kills_by_phase": by_phase,
            "sessions": self.sessions, "finished_before_kill": self.finished_early, "budget_evals": self.budget,
            "measured": self.measured, "evaluations_lost": self.lost, "duplicates": self.duplicates,
            "nodes": self.nodes, "branch_mismatches": len(self.branch_mismatch), "leftovers": len(self.leftovers),
            "orphans_after_kills": self.orphans, "orphans_not_reaped": len(self.not_reaped),
            "integrity": self.integrity, "final_status": self.final_status, "elapsed_s": round(self.elapsed_s, 1),
        }


def _db(run_dir: Path) -> sqlite3.Connection | None:
    if not (run_dir / "hgm.db").exists():
        return None
    try:
        return sqlite3.connect(f"file:{run_dir / 'hgm.db'}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None


def _query(run_dir: Path, sql: str) -> list[tuple]:
    conn = _db(run_dir)
    if conn is None:
        return []
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def _rows(run_dir: Path) -> int:
    found = _query(run_dir, "SELECT (SELECT COUNT(*) FROM evaluations) + (SELECT COUNT(*) FROM expansions)"
                            " + (SELECT COUNT(*) FROM nodes) + (SELECT COUNT(*) FROM llm_calls)")
    return found[0][0] if found else -1


def _calls(run_dir: Path, purposes: tuple[str, ...]) -> int:
    marks = ", ".join(f"'{p}'" for p in purposes)
    found = _query(run_dir, f"SELECT COUNT(*) FROM llm_calls WHERE purpose IN ({marks})")
    return found[0][0] if found else 0


def measured_pairs(run_dir: Path) -> list[tuple[int, str]]:
    return [(n, t) for n, t in _query(run_dir, "SELECT node_id, task_id FROM evaluations WHERE utility IS NOT NULL")]


def _processes_under(tmp_root: Path) -> list[tuple[int, str]]:
    """(pid, command) of every process whose environment points into `tmp_root`."""
    needle = str(tmp_root).encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
            if not any(v.startswith(b"TMPDIR=" + needle) for v in env):
                continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                found.append((int(entry.name), fh.read().replace(b"\0", b" ").decode(errors="replace")[:160]))
        except OSError:
            continue
    return found


def _sessions(run_dir: Path) -> int:
    found = _query(run_dir, "SELECT COUNT(*) FROM events WHERE kind = 'session_start'")
    return found[0][0] if found else 0


def _alive(pid: int, tmp_root: Path) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return any(v.startswith(b"TMPDIR=" + str(tmp_root).encode()) for v in fh.read().split(b"\0"))
    except OSError:
        return False


def _containers(run_dir: Path) -> list[str]:
    try:
        import docker

        client = docker.from_env(timeout=10)
    except Exception:  # noqa: BLE001 - no engine: no containers
        return []
    try:
        found = client.api.containers(all=True, filters={"label": [f"hgm.run_dir={run_dir.resolve()}"]})
        return [(c.get("Names") or [c["Id"][:12]])[0].lstrip("/") for c in found]
    finally:
        client.close()


def gateway_dir(run_dir: Path) -> Path:
    key = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:12]
    return Path("/tmp") / f"hgm-gw-{key}"


class Soak:
    """One soak: a run directory, its private temp folder, and the kill plan."""

    def __init__(self, root: Path, *, kills: int, seed: int, budget_step: int, workers: int, sandbox: str,
                 solve_sleep: float, timeout_s: float, log=None) -> None:
        self.root = root
        self.run_dir = root / "run"
        # TMPDIR of every hgm process (its temp files must all go); short, as the agents' own
        # tests make unix sockets under it (at most 107 bytes)
        self.tmp = Path(tempfile.mkdtemp(prefix="hgm-soak-", dir="/tmp" if Path("/tmp").is_dir() else None))
        self.rng = random.Random(seed)
        self.kills = kills
        self.budget = budget_step
        self.budget_step = budget_step
        self.workers = workers
        self.sandbox = sandbox
        self.timeout_s = timeout_s
        self.script = write_script(root / "script.json", solve_sleep=solve_sleep)
        self.report = SoakReport(kills)
        self.seen: set[tuple[int, str]] = set()
        self.pending: tuple[set[int], set[str]] = (set(), set())  # left by kills, not yet seen reaped
        self.log = log or (lambda msg: None)

    def env(self) -> dict[str, str]:
        return {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TMPDIR": str(self.tmp)}

    def command(self, first: bool, extend: bool) -> list[str]:
        if first:
            return [sys.executable, "-m", "hgm", "run", "--run-dir", str(self.run_dir), "--model",
                    f"scripted:{self.script}", "--sandbox", self.sandbox, "--tasks", TASKS, "--budget-evals",
                    str(self.budget), "--workers", str(self.workers), "--seed", "0", "--json"]
        extra = ["--budget-evals", str(self.budget)] if extend else []
        return [sys.executable, "-m", "hgm", "resume", str(self.run_dir), "--json", *extra]

    def start(self, first: bool, extend: bool) -> subprocess.Popen:
        self.report.sessions += 1
        return subprocess.Popen(self.command(first, extend), cwd=REPO, env=self.env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    def check_reaped(self, proc: subprocess.Popen, sessions_before: int) -> None:
        """Once the new session has started, nothing the killed ones left may remain."""
        pids, boxes = self.pending
        if not pids and not boxes:
            return
        deadline = time.monotonic() + self.timeout_s
        while _sessions(self.run_dir) <= sessions_before:
            if proc.poll() is not None or time.monotonic() > deadline:
                return  # did not get that far (killed at start-up): check with the next one
            time.sleep(0.02)
        left = [f"process {p}" for p in sorted(pids) if _alive(p, self.tmp)]
        left += [f"container {c}" for c in sorted(boxes & set(_containers(self.run_dir)))]
        self.report.not_reaped += left
        self.pending = (set(), set())

    def accepting(self) -> bool:
        """True while a child's own tests run (a host process, or a container of the run)."""
        if self.sandbox == "local":
            return any("unittest" in cmd for _, cmd in _processes_under(self.tmp))
        return any(f"hgm-{purpose}-" in name for name in _containers(self.run_dir) for purpose in ACCEPTANCE_PURPOSES)

    def wait_for(self, proc: subprocess.Popen, phase: str) -> float | None:
        """Block until the moment to kill in `phase` comes (seconds waited), or None if the process ended."""
        t0 = time.monotonic()
        deadline = t0 + self.timeout_s
        if phase in ("start-up", "random"):
            delay = self.rng.uniform(0.05, 2.5) if phase == "start-up" else self.rng.uniform(1.0, 10.0)
            while time.monotonic() - t0 < delay:
                if proc.poll() is not None:
                    return None
                time.sleep(0.01)
            return time.monotonic() - t0
        rows = _rows(self.run_dir)
        solves = _calls(self.run_dir, ("solve",))
        expands = _calls(self.run_dir, ("diagnose", "improve"))
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return None
            if phase == "archive":
                now = _rows(self.run_dir)
                if now > rows >= 0:
                    time.sleep(self.rng.uniform(0.0, 0.01))
                    return time.monotonic() - t0
                rows = now if rows < 0 else rows
            elif phase == "evaluation" and _calls(self.run_dir, ("solve",)) > solves:
                time.sleep(self.rng.uniform(0.0, 1.0))
                return time.monotonic() - t0
            elif phase == "expansion" and _calls(self.run_dir, ("diagnose", "improve")) > expands:
                time.sleep(self.rng.uniform(0.0, 0.5))
                return time.monotonic() - t0
            elif phase == "acceptance" and self.accepting():
                time.sleep(self.rng.uniform(0.0, 0.3))
                return time.monotonic() - t0
            time.sleep(0.005 if phase == "archive" else 0.05)
        return time.monotonic() - t0  # the phase did not come in time: kill anyway

    def run(self) -> SoakReport:
        t0 = time.monotonic()
        first, extend = True, False
        missed = 0  # sessions in a row that finished before their phase came
        while len(self.report.kills) < self.kills:
            phase = PHASES[len(self.report.kills) % len(PHASES)] if self.kills >= len(PHASES) else \
                self.rng.choice(PHASES)
            if missed >= 2:
                phase = "random"  # that phase keeps missing: any moment of the next session
            sessions_before = _sessions(self.run_dir)
            proc = self.start(first, extend)
            self.check_reaped(proc, sessions_before)
            first_was = first
            first, extend = False, False
            waited = self.wait_for(proc, phase)
            if waited is None:  # the session ended before the kill
                err = proc.stderr.read()
                proc.wait()
                if first_was and not self.run_dir.exists():
                    raise RuntimeError(f"hgm run failed to start: {err[-2000:]}")
                if proc.returncode != 0:
                    self.report.failed_resumes.append(f"exit {proc.returncode}: {err.strip()[-400:]}")
                    if len(self.report.failed_resumes) > 3:
                        break
                self.report.finished_early += 1
                self.budget += self.budget_step
                extend, missed = True, missed + 1
                continue
            missed = 0
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stderr.close()
            first = not (self.run_dir / "hgm.db").exists()  # killed while creating it: start over
            pids = {pid for pid, _ in _processes_under(self.tmp)}
            boxes = set(_containers(self.run_dir))
            self.report.orphans += len(pids - self.pending[0]) + len(boxes - self.pending[1])
            self.pending = (self.pending[0] | pids, self.pending[1] | boxes)
            after = set(measured_pairs(self.run_dir))
            self.seen |= after
            self.report.kills.append({"phase": phase, "waited_s": round(waited, 2), "measured": len(after)})
            self.log(f"kill {len(self.report.kills)}/{self.kills} in {phase} after {waited:.1f} s "
                     f"({len(after)} measured)")
        # the last resume runs to the end
        sessions_before = _sessions(self.run_dir)
        proc = self.start(False, False)
        self.check_reaped(proc, sessions_before)
        try:
            _, err = proc.communicate(timeout=max(600.0, self.timeout_s * 4))
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if proc.returncode != 0:
            self.report.failed_resumes.append(f"final exit {proc.returncode}: {err.strip()[-400:]}")
        self.check()
        self.report.elapsed_s = time.monotonic() - t0
        return self.report

    def check(self) -> None:
        r = self.report
        r.budget = self.budget
        pairs = measured_pairs(self.run_dir)
        r.measured, r.duplicates = len(pairs), len(pairs) - len(set(pairs))
        r.lost = len(self.seen - set(pairs))
        found = _query(self.run_dir, "PRAGMA integrity_check")
        r.integrity = found[0][0] if found else "unreadable"
        status = _query(self.run_dir, "SELECT status FROM run")
        r.final_status = status[0][0] if status else ""
        nodes = {row[0] for row in _query(self.run_dir, "SELECT id FROM nodes")}
        r.nodes = len(nodes)
        refs = subprocess.run(["git", "--git-dir", str(self.run_dir / "agents.git"), "for-each-ref",
                               "--format=%(refname)", "refs/heads/node/"], capture_output=True, text=True).stdout
        branches = {int(ref.rsplit("/", 1)[1]) for ref in refs.split() if ref.rsplit("/", 1)[1].isdigit()}
        r.branch_mismatch = [f"node {n} has no branch" for n in sorted(nodes - branches)]
        r.branch_mismatch += [f"branch node/{b} has no node" for b in sorted(branches - nodes)]
        r.leftovers = [f"container {c}" for c in _containers(self.run_dir)]
        r.leftovers += [f"process {pid}: {cmd}" for pid, cmd in _processes_under(self.tmp)]
        r.leftovers += [f"temp {p.name}" for p in self.tmp.iterdir()]
        if gateway_dir(self.run_dir).exists():
            r.leftovers.append(f"gateway {gateway_dir(self.run_dir)}")
        r.leftovers += [f"half-made run {p.name}" for p in self.root.glob(".run.creating-*")]


def soak(root: Path, *, kills: int = 5, seed: int = 0, budget_step: int = 8, workers: int = 2, sandbox: str = "local",
         solve_sleep: float = 0.3, timeout_s: float = 120.0, log=None) -> SoakReport:
    """Run one soak in `root` (see the module docstring) and return its report."""
    runner = Soak(Path(root), kills=kills, seed=seed, budget_step=budget_step, workers=workers, sandbox=sandbox,
                  solve_sleep=solve_sleep, timeout_s=timeout_s, log=log)
    try:
        return runner.run()
    finally:
        shutil.rmtree(runner.tmp, ignore_errors=True)


def report_json(report: SoakReport) -> str:
    return json.dumps({**report.figures(), "problems": report.problems()})
