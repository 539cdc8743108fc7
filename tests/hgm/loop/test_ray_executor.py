"""The Ray executor's parts, and (on a real loopback cluster) doctor's report and Ctrl-C twice.

Without Ray: what travels between head and node (artifacts, agent bundles, the parent's
evaluations) and a node service's bookkeeping (each call record handed over once, the
run's dollar/token cap held across nodes). With Ray (`ray` marker; the module's cluster
is a head and one worker node offering 2 docker_slots): `hgm doctor --executor ray` and
a session whose jobs are abandoned by Ctrl-C twice.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from archive.run import Run
from hgm.config import build_config
from hgm.evolve.lessons import EvalView
from hgm.gateway.chat import LLMCallError, chat
from hgm.gateway import GatewayConfig
from hgm.gateway.config import BudgetLimit
from hgm.gateway.costs import CostBook
from hgm.gateway.records import CallRecord
from hgm.loop.ray_node import NodeService
from hgm.loop.ray_transfer import TransferError, agent_tree, pack_dir, pack_eval_views, unpack_dir, unpack_eval_views
from hgm.loop.session import create_run, seed_agent_tree
from tests.e2e.scripted import write_script

REPO = Path(__file__).resolve().parents[3]
TASKS = ("hgm-mini__iniconf-2", "hgm-mini__iniconf-3", "hgm-mini__iniconf-4")


# ------------------------------------------------------------------ transfers (no Ray)

def test_pack_and_unpack_keep_files_and_skip_unsafe_members(tmp_path: Path) -> None:
    src = tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    (src / "trajectory.jsonl").write_text('{"step": 1}\n')
    (src / "sub" / "test.log").write_bytes(b"\x00binary\xff")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "x.pyc").write_bytes(b"junk")
    dest = unpack_dir(pack_dir(src), tmp_path / "back")
    assert (dest / "trajectory.jsonl").read_text() == '{"step": 1}\n'
    assert (dest / "sub" / "test.log").read_bytes() == b"\x00binary\xff"
    assert not (dest / "__pycache__").exists()
    assert pack_dir(tmp_path / "missing") == b"" and unpack_dir(b"", tmp_path / "empty").is_dir()
    # a member pointing out of the directory is skipped, the rest is kept
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("../escape.txt", b"evil"), ("ok.txt", b"fine")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    unpack_dir(buffer.getvalue(), tmp_path / "safe")
    assert (tmp_path / "safe" / "ok.txt").read_bytes() == b"fine" and not (tmp_path / "escape.txt").exists()
    with pytest.raises(TransferError):
        unpack_dir(b"not a tar at all", tmp_path / "bad")


def test_agent_tree_checks_a_version_out_once_from_its_bundle(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "run", {"test": True}, seed_agent_tree(tmp_path / "seed"))
    bundle_path = run.export(0, tmp_path / "seed.bundle", fmt="bundle")
    commit = run.commit_of(0)
    fetched = []

    def fetch() -> bytes:
        fetched.append(1)
        return bundle_path.read_bytes()

    cache = tmp_path / "cache"
    tree = agent_tree(commit, fetch, cache)
    assert tree == cache / commit and fetched == [1]
    expected = tmp_path / "checkout"
    run.checkout(0, expected)
    files = sorted(p.relative_to(expected) for p in expected.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(tree) for p in tree.rglob("*") if p.is_file())
    assert all((tree / f).read_bytes() == (expected / f).read_bytes() for f in files)
    assert agent_tree(commit, fetch, cache) == tree and fetched == [1]  # cached: no second fetch
    with pytest.raises(TransferError):
        agent_tree("0" * 40, fetch, tmp_path / "other")  # the bundle does not hold that version
    with pytest.raises(TransferError):
        agent_tree("../../etc", fetch, cache)
    run.close()


def test_parent_evaluations_travel_with_their_artifacts(tmp_path: Path) -> None:
    art = tmp_path / "run" / "evals" / "node0" / "t1-x"
    art.mkdir(parents=True)
    for name, text in (("trajectory.jsonl", "{}\n"), ("report.json", "{}"), ("test.log", "FAILED"), ("patch.diff", "")):
        (art / name).write_text(text)
    timeout_log = tmp_path / "elsewhere" / "agent.log"
    timeout_log.parent.mkdir()
    timeout_log.write_text("context length exceeded")
    views = [
        EvalView("t1", "unresolved", "", str(art / "trajectory.jsonl"), str(art / "test.log")),
        EvalView("t2", "timeout", "", None, str(timeout_log)),
        EvalView("t3", "error_infra", "engine gone", None, None),
    ]
    data, moved = pack_eval_views(views)
    assert [v.trajectory_path for v in moved] == ["e0/trajectory.jsonl", None, None]
    back = unpack_eval_views(data, moved, tmp_path / "node")
    assert [(v.task_id, v.status, v.detail) for v in back] == [(v.task_id, v.status, v.detail) for v in views]
    first = Path(back[0].trajectory_path)
    assert first.parent == tmp_path / "node" / "e0"
    assert sorted(p.name for p in first.parent.iterdir()) == ["patch.diff", "report.json", "test.log", "trajectory.jsonl"]
    assert Path(back[1].log_path).read_text() == "context length exceeded" and back[2].log_path is None


# ------------------------------------------------------------------ node service (no Ray)

def _service(tmp_path: Path, **budget: object) -> NodeService:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"default": [{"reply": "hi", "prompt_tokens": 10, "completion_tokens": 5}] * 20}))
    config = GatewayConfig(model=f"scripted:{script}", run_budget=BudgetLimit(**budget))  # type: ignore[arg-type]
    return NodeService("node-a", "sess", config, (0.0, 0))


def _call(service: NodeService, job: str) -> None:
    url = service.endpoint()["url"]
    # a small reply cap: the gateway reserves a call's worst case (prompt + max_tokens) against the cap
    chat(url, "hgm", [{"role": "user", "content": "hello"}], {"job": job, "node": "0", "purpose": "solve"}, max_tokens=5)


def test_node_service_hands_each_call_record_over_once(tmp_path: Path) -> None:
    service = _service(tmp_path)
    try:
        service.begin("s-1", "s-1.aa")
        _call(service, "s-1.aa")
        _call(service, "s-1.aa")
        _call(service, "s-2.bb")
        assert service.job("s-1.aa") == (0.0, 30)
        mine = service.take("s-1.aa")
        assert [r.tags["job"] for r in mine] == ["s-1.aa", "s-1.aa"]
        assert service.take("s-1.aa") == []  # handed over once
        records, starts = service.exchange((0.0, 30))
        assert [r.tags["job"] for r in records] == ["s-2.bb"] and starts == [("s-1", "s-1.aa")]
        assert service.exchange((0.0, 45)) == ([], [])
        assert service.job("s-1.aa") == (0.0, 30)  # the job's own sums stay readable after hand-over
    finally:
        assert service.close() == []


def test_node_service_refuses_calls_once_the_whole_run_spent_its_cap(tmp_path: Path) -> None:
    service = _service(tmp_path, tokens=100)
    try:
        _call(service, "j.1")  # 15 tokens here
        service.exchange((0.0, 15))  # the head counted them: the run stands at 15
        service.exchange((0.0, 100))  # other nodes spent the rest
        with pytest.raises(LLMCallError, match="budget"):
            _call(service, "j.1")
        refused, _ = service.exchange((0.0, 40))  # (the head's figure is the truth, also when it is lower)
        assert [r.status for r in refused] == [402]  # the refused call is recorded too
        _call(service, "j.1")
        assert [r.status for r in service.exchange((0.0, 55))[0]] == [200]
    finally:
        service.close()


@pytest.mark.docker
def test_a_session_s_sandboxes_left_by_a_lost_worker_are_removed(tmp_path: Path) -> None:
    from sandbox.api import SandboxSpec
    from sandbox.docker_backend import DockerBackend

    from hgm.loop.ray_node import SESSION_LABEL, remove_session_sandboxes

    backend = DockerBackend()
    left = backend.open(SandboxSpec(labels={SESSION_LABEL: "gone-1", "hgm.purpose": "test"}))
    other = backend.open(SandboxSpec(labels={SESSION_LABEL: "other-1", "hgm.purpose": "test"}))
    try:
        assert remove_session_sandboxes("gone-1") == 1
        client = backend.client
        assert not client.api.containers(all=True, filters={"id": left.container_id})
        assert client.api.containers(all=True, filters={"id": other.container_id})  # another session's stays
        assert remove_session_sandboxes("gone-1") == 0
    finally:
        other.close()
        left.close()


# ------------------------------------------------------------------ head side without a cluster

@pytest.mark.ray
def test_node_gateways_get_provider_settings_and_nothing_else() -> None:
    from hgm.loop.ray_executor import gateway_env

    env = {"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k2", "OPENAI_API_BASE": "http://x", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "AWS_REGION_NAME": "eu", "HOME": "/root", "PATH": "/bin", "HGM_CACHE_DIR": "/c", "SECRET_SAUCE": "no"}
    assert sorted(gateway_env(env)) == ["ANTHROPIC_API_KEY", "AWS_REGION_NAME", "LITELLM_LOCAL_MODEL_COST_MAP",
                                        "OPENAI_API_BASE", "OPENAI_API_KEY"]


@pytest.mark.ray
def test_fleet_counts_every_attempt_of_a_job_toward_the_run(tmp_path: Path) -> None:
    from hgm.loop.ray_executor import NodeFleet

    stored: list[CallRecord] = []
    costs = CostBook(stored.append, preload=(1.0, 0))
    fleet = NodeFleet("s", None, costs, "docker_slots", {})

    def record(job: str, cost: float) -> CallRecord:
        return CallRecord(1.0, {"job": job}, "m", 200, prompt_tokens=3, completion_tokens=1, cost=cost)

    fleet.ingest([record("s-4.aa", 0.25)], [("s-4", "s-4.aa")])  # the attempt whose worker died
    fleet.ingest([record("s-4.bb", 0.5), record("s-5.cc", 0.125)], [("s-4", "s-4.bb")])
    assert fleet.spend("s-4") == (0.75, 8) and fleet.attempts("s-4") == {"s-4.aa", "s-4.bb"}
    assert costs.totals() == (1.875, 12) and len(stored) == 3


@pytest.mark.ray
def test_an_absent_head_is_a_quick_one_line_error() -> None:
    from hgm.loop import ray_cluster

    started = time.monotonic()
    with pytest.raises(ray_cluster.ClusterError, match="no Ray head answers at 127.0.0.1:9"):
        ray_cluster.connect("127.0.0.1:9", slot_resource="docker_slots", local_slots=1)
    with pytest.raises(ray_cluster.ClusterError, match="not auto or HOST:PORT"):
        ray_cluster.connect("nonsense", slot_resource="docker_slots", local_slots=1)
    assert time.monotonic() - started < 15


# ------------------------------------------------------------------ on the module's cluster

@pytest.mark.ray
@pytest.mark.slow
def test_doctor_reports_the_cluster(ray_cluster) -> None:
    env = {**os.environ, **ray_cluster.env}
    done = subprocess.run([sys.executable, "-m", "hgm", "doctor", "--executor", "ray", "--ray-address",
                           ray_cluster.address, "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    rows = {r["check"]: r for r in json.loads(done.stdout)["checks"]}
    assert rows["ray"]["state"] == "ok"
    assert rows["ray cluster"]["state"] == "ok" and "2 node(s)" in rows["ray cluster"]["detail"]
    assert "2 docker_slots in all" in rows["ray cluster"]["detail"]
    nodes = [r for name, r in rows.items() if name.startswith(("ray node 127.0.0.1", "ray head 127.0.0.1"))]
    assert len(nodes) == 2
    worker = next(r for r in nodes if r["check"].startswith("ray node"))
    assert worker["detail"].startswith("2 docker_slots") and f"Python {sys.version.split()[0]}" in worker["detail"]
    import ray

    assert f"Ray {ray.__version__}" in worker["detail"] and f"hgm {version('hgm')}" in worker["detail"]


@pytest.mark.ray
@pytest.mark.slow
def test_ctrl_c_twice_cancels_the_ray_jobs_and_records_them_abandoned(tmp_path: Path, ray_cluster,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from hgm.loop.session import run_session

    for key, value in ray_cluster.env.items():
        monkeypatch.setenv(key, value)
    script = write_script(tmp_path / "script.json", solve_sleep=60.0)
    config = build_config(overrides={
        "model": f"scripted:{script}", "sandbox": "local", "tasks": list(TASKS), "budget": {"evals": 3},
        "executor": "ray", "ray": {"address": ray_cluster.address}, "grace_period_s": 60,
    })
    run = create_run(config, tmp_path / "run")

    def interrupt_when_busy() -> None:
        deadline = time.monotonic() + 120
        while len(ray_cluster.worker_pids("ray::hgm eval")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_busy, daemon=True).start()
    started = time.monotonic()
    try:
        result = run_session(run, config)
        rows = run.evaluations()
    finally:
        run.close()
    assert time.monotonic() - started < 55  # not the agents' 60 s: the jobs were cancelled
    assert result.outcome.stop_reason == "interrupted" and result.outcome.abandoned == 2
    assert [r["status"] for r in rows] == ["abandoned", "abandoned"] and all(r["utility"] is None for r in rows)
    deadline = time.monotonic() + 30
    while ray_cluster.worker_pids("ray::hgm eval") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray_cluster.worker_pids("ray::hgm eval") == []  # the tasks stopped on the worker node
