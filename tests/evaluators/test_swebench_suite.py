"""SWE-bench instance files: loading, TestSpec/eval-script building, grading recorded logs offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluators.grading import grade, grade_log
from evaluators.outcomes import Outcome
from evaluators.suite import load_suite
from evaluators.swebench_suite import SWEBenchSuite, files_in_patch
from evaluators.task import TaskError
from fakesandbox import FakeBackend


def _instances(calc_suite_path: Path) -> list[dict]:
    suite = load_suite(calc_suite_path)
    first, second = (t.instance() for t in suite.tasks())
    # swebench 5 schema: carries its own eval script, image and parser
    first["image"] = "swebench/sweb.eval.x86_64.calc-1:latest"
    # an older Hugging Face row: no eval script, test lists as JSON strings
    old = {k: second[k] for k in ("instance_id", "repo", "base_commit", "problem_statement", "patch",
                                  "test_patch", "version", "environment_setup_commit", "hints_text", "created_at")}
    old["FAIL_TO_PASS"] = json.dumps(second["FAIL_TO_PASS"])
    old["PASS_TO_PASS"] = json.dumps(second["PASS_TO_PASS"])
    return [first, old]


@pytest.fixture()
def jsonl(calc_suite_path: Path, tmp_path: Path) -> Path:
    path = tmp_path / "instances.jsonl"
    path.write_text("\n".join(json.dumps(i) for i in _instances(calc_suite_path)) + "\n")
    return path


def test_loads_json_and_jsonl(jsonl: Path, calc_suite_path: Path, tmp_path: Path) -> None:
    suite = load_suite(jsonl)
    assert isinstance(suite, SWEBenchSuite)
    assert [t.instance_id for t in suite.tasks()] == ["calc-1", "calc-2"]
    assert suite.tasks()[1].FAIL_TO_PASS == ["tests/test_calc.py::test_clamp"]
    as_json = tmp_path / "instances.json"
    as_json.write_text(json.dumps(_instances(calc_suite_path)))
    assert [t.instance_id for t in load_suite(as_json).tasks()] == ["calc-1", "calc-2"]


def test_bad_instance_names_line_or_field(jsonl: Path, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    del rows[1]["base_commit"]
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(TaskError, match=r"broken.jsonl: calc-2: field 'base_commit' is missing"):
        load_suite(broken)
    garbled = tmp_path / "garbled.jsonl"
    garbled.write_text(jsonl.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(TaskError, match="garbled.jsonl line 2: not valid JSON"):
        load_suite(garbled)


def test_test_spec_and_eval_scripts(jsonl: Path) -> None:
    suite = load_suite(jsonl)
    own, old = suite.tasks()
    spec = suite.test_spec(own)
    assert spec.instance_id == "calc-1" and spec.log_parser == "parse_log_pytest"
    assert spec.FAIL_TO_PASS == ["tests/test_calc.py::test_add"]
    assert "EOF_HGM_TEST_PATCH" in spec.eval_script  # the instance's own script
    assert 'echo ">>>>> Test Exit Code: $SWEBENCH_TEST_EXIT_CODE"' in spec.eval_script  # swebench's capture
    generic = suite.test_spec(old).eval_script
    assert files_in_patch(old.test_patch) == ["tests/test_calc.py"]
    assert "git checkout" in generic and "pytest -rA" in generic and "def test_clamp" in generic
    assert generic.count("SWEBENCH_TEST_EXIT_CODE=$?") == 1


def test_grading_with_a_local_mirror(jsonl: Path, calc_suite_path: Path) -> None:
    suite = SWEBenchSuite.from_file(jsonl, repos_dir=calc_suite_path / "repos")
    for task in suite.tasks():
        assert suite.image(task) == "hgm-base:latest"  # the named swebench image is not here
        assert grade(task.patch, task, suite, FakeBackend()).outcome is Outcome.RESOLVED
        assert grade("", task, suite, FakeBackend(), run_empty=True).outcome is Outcome.UNRESOLVED


def test_missing_mirror_is_an_infra_error_not_a_score(jsonl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HGM_SWEBENCH_REPOS", raising=False)
    suite = load_suite(jsonl)
    task = suite.tasks()[0]
    result = grade(task.patch, task, suite, FakeBackend(), retries=0)
    assert result.outcome is Outcome.ERROR_INFRA and "no local mirror of hgm-test/calc" in result.detail


# A recorded log in the shape the swebench harness writes for a pytest-based instance.
RECORDED = """+ source /opt/miniconda3/bin/activate
+ git apply -v -
Checking patch astropy/modeling/tests/test_separable.py...
Applied patch astropy/modeling/tests/test_separable.py cleanly.
+ : '>>>>> Start Test Output'
+ pytest -rA astropy/modeling/tests/test_separable.py
============================= test session starts ==============================
collected 4 items

astropy/modeling/tests/test_separable.py ..F.                            [100%]

=========================== short test summary info ============================
PASSED astropy/modeling/tests/test_separable.py::test_coord_matrix
PASSED astropy/modeling/tests/test_separable.py::test_cdot
{status} astropy/modeling/tests/test_separable.py::test_separable[compound_model6-result6]
PASSED astropy/modeling/tests/test_separable.py::test_custom_model_separable
========================= 1 failed, 3 passed in 0.25s =========================
+ : '>>>>> End Test Output'
>>>>> Test Exit Code: {code}
"""


def test_grade_recorded_swebench_log_offline() -> None:
    suite = SWEBenchSuite("recorded", [])
    from evaluators.task import parse_task

    task = parse_task({
        "instance_id": "astropy__astropy-12907", "repo": "astropy/astropy", "base_commit": "d16bfe05a744909de4b27f5875fe0d4ed41ce607",
        "problem_statement": "separability matrix wrong for nested compound models", "version": "4.3",
        "FAIL_TO_PASS": '["astropy/modeling/tests/test_separable.py::test_separable[compound_model6-result6]"]',
        "PASS_TO_PASS": '["astropy/modeling/tests/test_separable.py::test_coord_matrix", "astropy/modeling/tests/test_separable.py::test_cdot"]',
        "eval_script": "#!/bin/bash\nset -uxo pipefail\n: '>>>>> Start Test Output'\npytest -rA x\n: '>>>>> End Test Output'\n",
    })
    env = suite.grading_env(task)
    assert "SWEBENCH_TEST_EXIT_CODE=$?" in env.eval_script
    outcome, report, _ = grade_log(task, RECORDED.format(status="PASSED", code=0), "diff --git a/x b/x", env)
    assert outcome is Outcome.RESOLVED
    outcome, report, _ = grade_log(task, RECORDED.format(status="FAILED", code=1), "diff --git a/x b/x", env)
    assert outcome is Outcome.UNRESOLVED
    assert report["tests_status"]["PASS_TO_PASS"]["failure"] == []


def test_dataset_name_offline_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluators.swebench_suite as module

    def offline(*_args, **_kw):
        raise ConnectionError("Couldn't reach 'SWE-bench/SWE-bench_Lite' on the Hub (LocalEntryNotFoundError)")

    import swebench.harness.utils

    monkeypatch.setattr(swebench.harness.utils, "load_swebench_dataset", offline)
    from evaluators.suite import SuiteError

    with pytest.raises(SuiteError, match=r"cannot load SWE-bench/SWE-bench_Lite \(test\) from Hugging Face"):
        load_suite("lite")
    assert module.ALIASES["verified"] == "SWE-bench/SWE-bench_Verified"


@pytest.mark.docker
def test_uses_the_instance_image_when_the_engine_has_it(jsonl: Path, calc_suite_path: Path, tmp_path: Path,
                                                         docker_backend) -> None:
    """Stand-in for a pulled swebench image: the repository baked in at /testbed."""
    import shutil

    import docker

    from evaluators.repos import snapshot
    from sandbox.images import build_image_from

    suite = SWEBenchSuite.from_file(jsonl)  # no mirror: only the image can provide the repo
    task = suite.tasks()[0]
    context = tmp_path / "context"
    shutil.copytree(snapshot(calc_suite_path / "repos" / "calc.bundle", task.base_commit), context / "testbed",
                    symlinks=True)
    (context / "Dockerfile").write_text("FROM hgm-base:latest\nCOPY --chown=1000:1000 testbed /testbed\n")
    build_image_from(None, context, task.image, network_mode="none")
    env = None
    try:
        assert grade(task.patch, task, suite, docker_backend).outcome is Outcome.RESOLVED
        assert grade("", task, suite, docker_backend, run_empty=True).outcome is Outcome.UNRESOLVED
        env = suite.ensure_environment(task, docker_backend)
        assert env.how == "image" and env.repo_in_image and env.image.startswith("hgm-testbed:")  # uid-1000 layer
        assert docker.from_env().images.get(env.image).labels["hgm.source"] == task.image
    finally:
        if env is not None:
            docker.from_env().images.remove(env.image, force=True)
        docker.from_env().images.remove(task.image, force=True)


def test_image_names_follow_swebench() -> None:
    from evaluators.swebench_suite import instance_image_name, with_registry
    from evaluators.task import parse_task

    assert instance_image_name("Django__django-11099") == "swebench/sweb.eval.x86_64.django_1776_django-11099:latest"
    assert instance_image_name("a__b-1", "MyNS") == "myns/sweb.eval.x86_64.a_1776_b-1:latest"
    assert with_registry("swebench/x:latest", "127.0.0.1:5000") == "127.0.0.1:5000/swebench/x:latest"
    assert with_registry("docker.io/swebench/x:latest", "mirror:5000") == "mirror:5000/swebench/x:latest"
    assert with_registry("swebench/x:latest", None) == "swebench/x:latest"
    row = {"instance_id": "o__r-1", "repo": "o/r", "base_commit": "abc", "problem_statement": "p",
           "FAIL_TO_PASS": ["t"], "image": "elsewhere/own-image:v1"}
    task = parse_task(row)
    assert SWEBenchSuite("s", [task]).image_name(task) == "elsewhere/own-image:v1"  # the instance's column wins
    assert SWEBenchSuite("s", [task], namespace="mirror").image_name(task) == "mirror/sweb.eval.x86_64.o_1776_r-1:latest"


def test_probe_output_gives_the_activation_as_swebench_does_it() -> None:
    from evaluators.testbed import SPLIT, parse_probe, probe_script

    before = "PATH=/usr/bin:/bin\0HOME=/home/nonroot\0SHLVL=1\0"
    after = ("PATH=/opt/miniconda3/envs/testbed/bin:/usr/bin:/bin\0HOME=/home/nonroot\0SHLVL=2\0"
             "CONDA_DEFAULT_ENV=testbed\0MULTI=a\nb\0")
    output = f"python=/opt/miniconda3/bin/python3\nrepo=yes\n{SPLIT}{before}{SPLIT}{after}"
    python, repo, env = parse_probe(output)
    assert python == "/opt/miniconda3/bin/python3" and repo
    assert env == {"PATH": "/opt/miniconda3/envs/testbed/bin:/usr/bin:/bin", "CONDA_DEFAULT_ENV": "testbed",
                   "MULTI": "a\nb"}
    assert parse_probe(f"python=\n{SPLIT}{before}") == (None, False, {})  # no conda env: nothing to activate
    assert 'conda activate "$2"' in probe_script() and "testbed" in probe_script()
