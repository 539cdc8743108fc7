from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from evaluators.suite import SuiteError, load_suite
from evaluators.task import TaskError, parse_task

BASE = {"instance_id": "a__b-1", "repo": "a/b", "base_commit": "abc", "problem_statement": "x",
        "FAIL_TO_PASS": ["t::x"]}


def test_missing_field_is_named() -> None:
    data = dict(BASE)
    del data["base_commit"]
    with pytest.raises(TaskError) as info:
        parse_task(data, "tasks/a__b-1")
    message = str(info.value)
    assert message == "tasks/a__b-1: field 'base_commit' is missing"
    assert "\n" not in message


def test_wrong_type_is_named() -> None:
    with pytest.raises(TaskError, match="field 'FAIL_TO_PASS'"):
        parse_task({**BASE, "FAIL_TO_PASS": 3})


def test_json_string_lists_and_numeric_version_are_accepted() -> None:
    task = parse_task({**BASE, "FAIL_TO_PASS": '["t::a", "t::b"]', "PASS_TO_PASS": "[]", "version": 1.0})
    assert task.FAIL_TO_PASS == ["t::a", "t::b"]
    assert task.version == "1.0"


def test_task_dir_with_missing_field_gives_one_line_error(calc_suite_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "suite"
    shutil.copytree(calc_suite_path, copy)
    meta_path = copy / "tasks" / "calc-1" / "task.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    del meta["base_commit"]
    meta_path.write_text(yaml.safe_dump(meta))
    with pytest.raises(TaskError) as info:
        load_suite(copy).tasks()
    assert str(info.value) == "tasks/calc-1: field 'base_commit' is missing"


def test_task_dir_with_missing_file_names_it(calc_suite_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "suite"
    shutil.copytree(calc_suite_path, copy)
    (copy / "tasks" / "calc-2" / "eval.sh").unlink()
    with pytest.raises(TaskError, match=r"tasks/calc-2: missing file eval.sh"):
        load_suite(copy).tasks()


def test_unknown_suite_names_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="no suite 'nonesuch'"):
        load_suite("nonesuch")
    with pytest.raises(SuiteError, match="neither a task repo"):
        load_suite(tmp_path)
