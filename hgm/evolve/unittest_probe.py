"""Run an agent's unittest suite and write what happened to every test as JSON.

Standard library only: this file is copied into a sandbox and run there as
`python3 unittest_probe.py ROOT OUT.json` (ROOT holds `agent/`). It discovers
`agent/tests` like `python -m unittest discover -s agent/tests -t .` and also loads every
`agent/tests/test_contract*.py` module by name when discovery did not reach it (so a
`load_tests` hook cannot hide the contract tests). OUT.json holds `tests` (test id ->
pass | fail | error | skip | xfail | xpass), `ran`, `skipped` and `ok`.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import unittest


class _Recorder(unittest.TextTestResult):
    """A text result that also keeps one outcome per test id."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, str] = {}

    def _note(self, test: unittest.TestCase, outcome: str) -> None:
        test_id = test.id()
        if self.outcomes.get(test_id) in ("fail", "error"):
            return  # a subtest already failed this test
        self.outcomes[test_id] = outcome

    def addSuccess(self, test):  # noqa: N802 - unittest's names
        super().addSuccess(test)
        self._note(test, "pass")

    def addFailure(self, test, err):  # noqa: N802
        super().addFailure(test, err)
        self._note(test, "fail")

    def addError(self, test, err):  # noqa: N802
        super().addError(test, err)
        self._note(test, "error")

    def addSkip(self, test, reason):  # noqa: N802
        super().addSkip(test, reason)
        self._note(test, "skip")

    def addExpectedFailure(self, test, err):  # noqa: N802
        super().addExpectedFailure(test, err)
        self._note(test, "xfail")

    def addUnexpectedSuccess(self, test):  # noqa: N802
        super().addUnexpectedSuccess(test)
        self._note(test, "xpass")

    def addSubTest(self, test, subtest, err):  # noqa: N802
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self.outcomes[test.id()] = "fail" if failed else "error"


def _ids(suite: unittest.TestSuite) -> set[str]:
    out: set[str] = set()
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            out |= _ids(item)
        else:
            out.add(item.id())
    return out


def build_suite(root: str) -> unittest.TestSuite:
    """Discovered tests plus contract modules discovery did not reach."""
    loader = unittest.TestLoader()
    suite = loader.discover(os.path.join(root, "agent", "tests"), top_level_dir=root)
    seen = _ids(suite)
    for path in sorted(glob.glob(os.path.join(root, "agent", "tests", "test_contract*.py"))):
        module = "agent.tests." + os.path.splitext(os.path.basename(path))[0]
        if not any(test_id.startswith(module + ".") for test_id in seen):
            suite.addTests(loader.loadTestsFromName(module))
    return suite


def main(argv: list[str]) -> int:
    root, out = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    os.chdir(root)
    sys.path.insert(0, root)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=1, resultclass=_Recorder)
    result = runner.run(build_suite(root))
    report = {
        "tests": result.outcomes,
        "ran": result.testsRun,
        "skipped": len(result.skipped),
        "ok": result.wasSuccessful(),
    }
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(report, handle)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
