"""Screening patches for test machinery (pure functions) and the contamination canary."""

from __future__ import annotations

from types import SimpleNamespace

from evaluators.canary import canary_for, found_in, marked
from evaluators.machinery import HiddenTests, screen, split_patch


def section(path: str, body: str = "+x = 1\n", new: bool = True) -> str:
    head = f"diff --git a/{path} b/{path}\n"
    if new:
        return head + f"new file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n{body}"
    return head + f"--- a/{path}\n+++ b/{path}\n@@ -1,2 +1,2 @@\n{body}"


FIX = section("pkg/calc.py", " def add(a, b):\n-    return a - b\n+    return a + b\n", new=False)
TEST_PATCH = section("tests/test_calc.py", "+def test_add():\n+    assert add(2, 3) == 5\n", new=False)


def test_code_only_patch_is_kept_whole() -> None:
    screened = screen(FIX, TEST_PATCH)
    assert screened.kept == FIX and screened.touched == ()


def test_hooks_configs_and_runner_shadows_are_machinery() -> None:
    for path in ("conftest.py", "sub/dir/conftest.py", "pytest.ini", "tox.ini", "sitecustomize.py",
                 "lib/usercustomize.py", "evil.pth", "pytest.py", "_pytest/main.py"):
        screened = screen(FIX + section(path), TEST_PATCH)
        assert screened.paths == [path], path
        assert screened.kept == FIX  # the fix survives, the machinery is gone


def test_hidden_test_files_and_their_fixtures_are_machinery() -> None:
    for path in ("tests/test_calc.py", "tests/__init__.py", "tests/fixtures/expected.json"):
        body = section(path, new=path != "tests/test_calc.py") if path != "tests/test_calc.py" else \
            section(path, "-old\n+new\n", new=False)
        assert screen(FIX + body, TEST_PATCH).paths == [path]
    # a new test file elsewhere, or the agent's own test next to the code, is not the hidden tests'
    assert screen(FIX + section("pkg/test_extra.py"), TEST_PATCH).touched == ()
    hidden = HiddenTests.of_test_patch(TEST_PATCH)
    assert hidden.holds("tests/test_calc.py") and not hidden.holds("pkg/calc.py")


def test_mixed_config_files_count_only_for_test_settings() -> None:
    deps = section("pyproject.toml", ' [project]\n-version = "1.0"\n+version = "1.1"\n', new=False)
    assert screen(FIX + deps).touched == ()
    tests = section("pyproject.toml", ' [tool.pytest.ini_options]\n-addopts = ""\n+addopts = "-p x"\n', new=False)
    assert screen(FIX + tests).paths == ["pyproject.toml"]
    cfg = section("setup.cfg", "+[tool:pytest]\n+python_files = *.py\n")
    assert screen(cfg).paths == ["setup.cfg"]


def test_a_patch_of_only_machinery_leaves_nothing() -> None:
    screened = screen(section("conftest.py"))
    assert screened.kept == "" and "conftest.py (test hook or configuration)" in screened.describe()


def test_split_patch_keeps_every_byte() -> None:
    patch = "preamble\n" + FIX + section("a.py") + section("b.py")
    preamble, sections = split_patch(patch)
    assert preamble + "".join(s.text for s in sections) == patch and len(sections) == 3
    assert [s.paths for s in sections] == [("pkg/calc.py",), ("a.py",), ("b.py",)]


def test_canary_is_unique_per_task_and_survives_marking() -> None:
    a = SimpleNamespace(instance_id="a", test_patch=TEST_PATCH)
    b = SimpleNamespace(instance_id="b", test_patch=TEST_PATCH)
    assert canary_for(a) != canary_for(b) and canary_for(a) == canary_for(SimpleNamespace(**vars(a)))
    script = marked("#!/bin/bash\necho hi\n", canary_for(a))
    assert script.startswith("#!/bin/bash\n# hgm-canary-") and script.endswith("echo hi\n")
    assert found_in(canary_for(a), None, b"x", script) and not found_in(canary_for(b), script)
    # a marked test patch still applies: the marker is a preamble line git ignores
    assert split_patch(marked(TEST_PATCH, canary_for(a)))[1][0].text == TEST_PATCH
