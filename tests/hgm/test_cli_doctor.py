"""`hgm doctor`: one row per check, fixes for problems, exit 1 only when a required check fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hgm.cli import build_app
from hgm.cli import doctor
from hgm.cli.doctor import Check, CheckResult, DoctorContext, run_checks


def _doctor(*args: str):
    return CliRunner().invoke(build_app(), ["doctor", *args])


def test_all_builtin_checks_report_a_row(tmp_path: Path) -> None:
    result = _doctor("--json", "--runs-dir", str(tmp_path / "runs"))
    data = json.loads(result.stdout)
    names = [row["check"] for row in data["checks"]]
    for expected in ("python", "docker engine", "base image", "local model", "provider keys", "disk space"):
        assert expected in names
    for row in data["checks"]:
        assert row["state"] in ("ok", "warn", "fail")
        if row["state"] != "ok":
            assert row["fix"], f"{row['check']} failed without a fix"
    assert result.exit_code == (0 if data["ok"] else 1)
    docker_rows = [r for r in data["checks"] if r["check"] in ("docker engine", "base image")]
    assert all(not r["required"] for r in docker_rows)  # the local sandbox is the fallback


def test_key_names_shown_but_never_values(monkeypatch, tmp_path: Path) -> None:
    secret = "sk-do-not-print-4f9a"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    result = _doctor("--runs-dir", str(tmp_path))
    assert "ANTHROPIC_API_KEY" in result.stdout
    assert secret not in result.stdout and secret not in result.stderr
    data = json.loads(_doctor("--json", "--runs-dir", str(tmp_path)).stdout)
    assert secret not in json.dumps(data)


def test_required_failure_exits_1_optional_failure_warns(monkeypatch) -> None:
    ok = Check("fine", lambda ctx: CheckResult(True, "all good"))
    optional = Check("nice to have", lambda ctx: CheckResult(False, "missing", "install it"), required=False)
    monkeypatch.setattr(doctor, "CHECKS", (ok, optional))
    result = _doctor("--json")
    assert result.exit_code == 0
    assert [r["state"] for r in json.loads(result.stdout)["checks"]] == ["ok", "warn"]
    required = Check("must have", lambda ctx: CheckResult(False, "missing", "install it"))
    monkeypatch.setattr(doctor, "CHECKS", (ok, optional, required))
    result = _doctor()
    assert result.exit_code == 1
    assert "FAIL" in result.stdout and "install it" in result.stdout


def test_crashing_check_is_a_failed_row_not_a_crash() -> None:
    def boom(ctx: DoctorContext) -> CheckResult:
        raise RuntimeError("kaput")

    rows = run_checks([Check("boom", boom), Check("after", lambda ctx: CheckResult(True, "ran"))],
                      DoctorContext(runs_dir=Path(".")))
    assert rows[0]["state"] == "fail" and "kaput" in rows[0]["detail"]
    assert rows[1]["state"] == "ok"


def test_extra_checks_from_modules(monkeypatch, tmp_path: Path) -> None:
    module = tmp_path / "extra_checks_mod.py"
    module.write_text(
        "from hgm.cli.doctor import Check, CheckResult\n"
        "DOCTOR_CHECKS = (Check('extra', lambda ctx: CheckResult(True, 'from a module')),)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(doctor, "CHECK_MODULES", ("extra_checks_mod", "no_such_module_xyz"))
    names = [c.name for c in doctor.all_checks()]
    assert names[-1] == "extra" and "python" in names


def test_model_available_needs_local_model_or_key(monkeypatch) -> None:
    monkeypatch.setattr(doctor, "LOCAL_MODEL_MODULES", ("no_such_module_xyz",))
    ctx = DoctorContext(runs_dir=Path("."), env={})
    assert not doctor.check_model_available(ctx).ok
    ctx = DoctorContext(runs_dir=Path("."), env={"OPENAI_API_KEY": "x"})
    assert doctor.check_model_available(ctx).ok


def test_disk_check_uses_nearest_existing_parent(tmp_path: Path, monkeypatch) -> None:
    result = doctor.check_disk(DoctorContext(runs_dir=tmp_path / "a" / "b"))
    assert str(tmp_path) in result.detail
    monkeypatch.setattr(doctor, "MIN_FREE_GIB", 1e9)
    assert not doctor.check_disk(DoctorContext(runs_dir=tmp_path)).ok


@pytest.mark.docker
def test_docker_engine_check_passes_when_engine_answers() -> None:
    assert doctor.check_docker(DoctorContext(runs_dir=Path("."))).ok


def test_ray_node_rows_name_what_to_fix() -> None:
    here = {"python": "3.11.7", "ray": "2.60.0", "hgm": "0.1.0"}
    node = {"slots": 2.0, "cpus": 4.0, "python": "3.11.9", "ray": "2.60.0", "hgm": "0.1.0", "docker": "24.0",
            "base_image": True}
    ok = doctor._node_result(node, here, "docker_slots")
    assert ok.ok and ok.detail.startswith("2 docker_slots, 4 CPUs, Python 3.11.9") and "hgm-base present" in ok.detail
    older = doctor._node_result({**node, "ray": "2.9.0", "python": "3.12.1"}, here, "docker_slots")
    assert not older.ok and "Python, Ray" in older.fix
    assert "start Docker" in doctor._node_result({**node, "docker": None}, here, "docker_slots").fix
    assert "build-base" in doctor._node_result({**node, "base_image": False}, here, "docker_slots").fix
    head = doctor._node_result({**node, "slots": 0.0, "docker": None, "base_image": False}, here, "docker_slots")
    assert head.ok  # a node without slots runs no job: it needs no Docker
    lost = doctor._node_result({"problem": "did not answer: GetTimeoutError"}, here, "docker_slots")
    assert not lost.ok and "did not answer" in lost.detail


def test_ray_options_are_checked() -> None:
    result = _doctor("--ray-address", "auto")
    assert result.exit_code == 2 and "--ray-address needs --executor ray" in result.output
    result = _doctor("--executor", "k8s")
    assert result.exit_code == 2 and "threads or ray" in result.output


@pytest.mark.ray
def test_doctor_with_ray_and_no_address_describes_the_private_cluster(tmp_path: Path) -> None:
    data = json.loads(_doctor("--json", "--executor", "ray", "--runs-dir", str(tmp_path)).stdout)
    rows = {r["check"]: r for r in data["checks"]}
    assert rows["ray"]["state"] == "ok" and rows["ray"]["detail"].startswith("Ray ")
    assert "private one-node cluster" in rows["ray cluster"]["detail"]
