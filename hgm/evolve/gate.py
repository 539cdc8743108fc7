"""The admission gate: one `vet(parent_dir, child_dir)` for the loop and for `hgm vet`.

Every child of every expansion passes through it before it joins the tree, and a user
can put any two agent directories through it (`hgm vet --parent DIR --child DIR`).
Checks, in order; each ends `pass`, `fail`, `warn` (recorded, not rejecting) or `skip`:

| check | rejects when |
| --- | --- |
| `changes` | the child is identical to its parent |
| `outside_package` | a file outside `agent/` is added, removed or changed |
| `protected` | a protected path or function of the manifest is touched (`hgm.evolve.protected`) |
| `binary` | an added or changed file is not UTF-8 text |
| `size` | the agent grows past `max_size_ratio` times its parent (bytes or lines), or a file passes `max_file_bytes` |
| `capabilities` | the code can do something its parent's could not (`hgm.evolve.capabilities`) |
| `own_tests` | the child's tests (contract tests from the parent) fail in a fresh sandbox without network |
| `weakened_tests` | fewer tests, more skips, or tests that no longer catch a broken agent (`hgm.evolve.behaviour`) |

The sandboxed checks run only when every static check passed and a `TestSandbox` is
given (else they are `skip`). The verdict lists every check with its reason; the loop
records it as one ledger row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hgm.evolve import behaviour, capabilities, protected
from hgm.evolve.agent_files import Change, compare, in_package, is_binary, line_count, tree_digest
from hgm.evolve.behaviour import TestSandbox

SANDBOX_CHECKS = ("own_tests", "weakened_tests")
MAX_LISTED = 8


@dataclass(frozen=True)
class GateSettings:
    """What the gate allows; a run freezes these in its config (`[gate]`)."""

    protected: tuple[str, ...] | None = None  # the manifest; None: the parent's default manifest
    max_size_ratio: float = 1.5
    max_file_bytes: int = 200_000


@dataclass(frozen=True)
class Check:
    """One check's verdict with its reason (and the specifics, one line each)."""

    name: str
    verdict: str
    reason: str
    details: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict, "reason": self.reason, "details": list(self.details)}


@dataclass(frozen=True)
class Verdict:
    """The gate's decision on a child: every check, and what identifies the change."""

    checks: tuple[Check, ...]
    diff_sha256: str = ""
    child_digest: str = ""
    test_s: float = 0.0
    test_logs: dict[str, str] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return all(c.verdict != "fail" for c in self.checks)

    @property
    def reason(self) -> str:
        """Why the child was rejected ('' when accepted): every failing check."""
        return "; ".join(f"{c.name}: {c.reason}" for c in self.checks if c.verdict == "fail")

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "reason": self.reason,
            "diff_sha256": self.diff_sha256,
            "child_digest": self.child_digest,
            "checks": [c.to_dict() for c in self.checks],
            "test_s": round(self.test_s, 3),
        }


def _listed(items: list[str]) -> str:
    more = f" (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
    return ", ".join(items[:MAX_LISTED]) + more


def _summary(problems: list[str]) -> str:
    return problems[0] if len(problems) == 1 else f"{len(problems)} problems: {_listed(problems)}"


def _check(name: str, problems: list[str], ok_reason: str) -> Check:
    if problems:
        return Check(name, "fail", _summary(problems), tuple(problems))
    return Check(name, "pass", ok_reason)


def check_changes(change: Change) -> Check:
    touched = change.touched
    if not touched:
        return Check("changes", "fail", "the child is identical to its parent")
    parts = [f"{len(change.added)} added", f"{len(change.modified)} modified", f"{len(change.removed)} removed"]
    return Check("changes", "pass", ", ".join(parts), tuple(touched))


def check_outside(change: Change) -> Check:
    outside = [p for p in change.touched if not in_package(p)]
    return _check("outside_package", outside, "every change is inside agent/")


def check_protected(change: Change, manifest: tuple[str, ...]) -> Check:
    found = protected.violations(manifest, change.parent, change.child, change.touched)
    return _check("protected", found, f"no protected path touched ({len(manifest)} manifest entries)")


def check_binary(change: Change) -> Check:
    blobs = [p for p in change.added + change.modified if is_binary(change.child[p])]
    return _check("binary", [f"{p} is binary" for p in blobs], "every added or changed file is text")


def check_size(change: Change, settings: GateSettings) -> Check:
    parent_bytes = sum(len(v) for v in change.parent.values())
    child_bytes = sum(len(v) for v in change.child.values())
    parent_lines, child_lines = line_count(change.parent), line_count(change.child)
    ratio = settings.max_size_ratio
    problems = []
    if child_bytes > parent_bytes * ratio:
        problems.append(f"{child_bytes} bytes, over {ratio:g} x the parent's {parent_bytes}")
    if child_lines > parent_lines * ratio:
        problems.append(f"{child_lines} lines, over {ratio:g} x the parent's {parent_lines}")
    problems += [f"{p} has {len(change.child[p])} bytes (limit {settings.max_file_bytes})"
                 for p in change.added + change.modified if len(change.child[p]) > settings.max_file_bytes]
    return _check("size", problems, f"{child_bytes} bytes / {child_lines} lines "
                                     f"(parent {parent_bytes} / {parent_lines})")


def check_capabilities(change: Change) -> Check:
    before = capabilities.tree_findings(change.parent)
    after = capabilities.tree_findings(change.child)
    new = capabilities.new_findings(before, after)
    return _check("capabilities", [f.describe() for f in new], "no capability beyond the parent's")


def sandbox_checks(parent_dir: Path, child_dir: Path, manifest: tuple[str, ...], sandbox: TestSandbox
                   ) -> tuple[list[Check], float, dict[str, str]]:
    """`own_tests` and `weakened_tests` from the four sandboxed suite runs."""
    runs, seconds = behaviour.run_suites(parent_dir, child_dir, manifest, sandbox)
    child = runs["child"]
    problem = behaviour.own_tests_problem(child)
    own = Check("own_tests", "fail", problem) if problem else Check(
        "own_tests", "pass", f"{child.ran} tests ran and passed ({child.skipped} skipped), no network")
    problems, notes = behaviour.weakening(runs)
    if problems:
        weak = Check("weakened_tests", "fail", _summary(problems), tuple(problems + notes))
    elif notes:
        weak = Check("weakened_tests", "warn", _summary(notes), tuple(notes))
    else:
        caught = sum(runs["child_broken"].catching().values())
        weak = Check("weakened_tests", "pass", f"as many tests as the parent's; {caught} catch a broken agent")
    return [own, weak], seconds, {name: run.log for name, run in runs.items()}


def vet(
    parent_dir: Path,
    child_dir: Path,
    settings: GateSettings | None = None,
    sandbox: TestSandbox | None = None,
) -> Verdict:
    """Judge the agent in `child_dir` as a child of the one in `parent_dir`.

    Both are agent directories (`agent/` at the top). The static checks always run;
    the test checks run in a fresh sandbox of `sandbox` (none: `skip`) once the static
    checks passed. Raises the backend's errors on infrastructure failure.
    """
    settings = settings or GateSettings()
    change = compare(Path(parent_dir), Path(child_dir))
    manifest = settings.protected if settings.protected is not None else protected.default_manifest(change.parent)
    checks = [
        check_changes(change),
        check_outside(change),
        check_protected(change, manifest),
        check_binary(change),
        check_size(change, settings),
    ]
    binary = {p for p in change.touched if p in change.child and is_binary(change.child[p])}
    if binary:  # blobs are rejected already; their bytes are not source to analyse
        checks.append(Check("capabilities", "skip", "not analysed: the child has binary files"))
    else:
        checks.append(check_capabilities(change))
    seconds, logs = 0.0, {}
    if any(c.verdict == "fail" for c in checks):
        checks += [Check(name, "skip", "not run: the child failed a static check") for name in SANDBOX_CHECKS]
    elif sandbox is None:
        checks += [Check(name, "skip", "not run: no sandbox was given") for name in SANDBOX_CHECKS]
    else:
        tested, seconds, logs = sandbox_checks(Path(parent_dir), Path(child_dir), manifest, sandbox)
        checks += tested
    return Verdict(tuple(checks), change.digest(), tree_digest(change.child), seconds, logs)


def settings_from_config(gate: Any) -> GateSettings:
    """GateSettings from a run's `[gate]` config (a pydantic model or a plain mapping)."""
    data = gate.model_dump() if hasattr(gate, "model_dump") else dict(gate or {})
    manifest = data.get("protected")
    return GateSettings(
        protected=protected.check_manifest(manifest) if manifest is not None else None,
        **{k: data[k] for k in ("max_size_ratio", "max_file_bytes") if k in data},
    )


__all__ = ["Check", "GateSettings", "TestSandbox", "Verdict", "settings_from_config", "vet"]
