"""Level-2 operators: which kind of expansion to make, and the material recombine and refine need.

An expansion of the version the policy chose draws an operator from the run's mix
(`evolve.operators`):
- **revise**: today's self-improvement from a lesson and its diagnosis (`expand`);
- **recombine**: merge the chosen version with the strongest version outside its lineage
  (highest clade estimate, with its own measurements) from their common ancestor; the
  agent resolves the conflicts and integrates both ideas, guided by the tasks each solved
  that the other did not (`recombine_problem`);
- **refine**: polish the chosen version with its own successful and failed trajectories,
  for fewer steps and tokens with the same results (`refine_problem`).
What the expansion may read of the other versions comes through `Peers` (the loop's job
handler reads it from the archive), so policies stay unaware of operators.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from hgm.evolve.context import clip, read_text, render_trajectory
from hgm.evolve.diagnose import CONTRACT_NOTE
from hgm.evolve.lessons import EvalView

OPERATORS = ("revise", "recombine", "refine")
MAX_TASKS_SHOWN = 4


@dataclass(frozen=True)
class Version:
    """One agent version as an operator sees it: its place in the tree and its measurements."""

    node_id: int
    parent_id: int | None
    clade_successes: int = 0
    clade_failures: int = 0
    solved: frozenset[str] = frozenset()  # its own resolved tasks
    failed: frozenset[str] = frozenset()  # its own measured, unresolved tasks

    @property
    def estimate(self) -> float:
        """Posterior mean of the clade's success rate (uniform prior)."""
        return (self.clade_successes + 1) / (self.clade_successes + self.clade_failures + 2)


class Peers(Protocol):
    """What an expansion may read of the run's other versions."""

    def versions(self) -> Mapping[int, Version]: ...

    def source(self, node_id: int) -> Path:
        """A checkout of the version's source (a folder holding `agent/`); read only."""
        ...


def choose_operator(mix: Mapping[str, float], rng: random.Random) -> str:
    """Draw an operator by weight (no draw when only one has weight: seeded runs repeat as before)."""
    live = [(name, weight) for name, weight in mix.items() if weight > 0]
    if len(live) == 1:
        return live[0][0]
    names, weights = zip(*sorted(live))
    return rng.choices(names, weights=weights)[0]


def lineage(versions: Mapping[int, Version], node_id: int) -> list[int]:
    """`node_id` and its ancestors, nearest first."""
    out, current = [], node_id
    while current is not None and current in versions and current not in out:
        out.append(current)
        current = versions[current].parent_id
    return out


def common_ancestor(versions: Mapping[int, Version], a: int, b: int) -> int | None:
    """The nearest version both descend from (by primary parent)."""
    theirs = set(lineage(versions, b))
    return next((n for n in lineage(versions, a) if n in theirs), None)


def pick_partner(versions: Mapping[int, Version], primary: int) -> int | None:
    """The measured version outside `primary`'s lineage (ancestors and descendants) with the
    highest clade estimate; None when there is none."""
    related = set(lineage(versions, primary))
    related |= {n for n in versions if primary in lineage(versions, n)}
    candidates = [v for v in versions.values() if v.node_id not in related and (v.solved or v.failed)]
    if not candidates:
        return None
    return max(candidates, key=lambda v: (v.estimate, -v.node_id)).node_id


def _task_lines(task_ids: Sequence[str], problems: Mapping[str, str]) -> str:
    lines = []
    for task_id in sorted(task_ids)[:MAX_TASKS_SHOWN]:
        text = " ".join(problems.get(task_id, "").split())
        lines.append(f"- {task_id}: {clip(text, 300) if text else '(statement not available)'}")
    if len(task_ids) > MAX_TASKS_SHOWN:
        lines.append(f"- ... and {len(task_ids) - MAX_TASKS_SHOWN} more")
    return "\n".join(lines) or "- (none)"


def recombine_problem(
    ours: Version, theirs: Version, conflicts: Sequence[str], ours_diff: str, theirs_diff: str,
    problems: Mapping[str, str], limit: int,
) -> str:
    """The problem statement of a recombination (the agent works on the merged source)."""
    if conflicts:
        state = ("The merge left conflicts (git diff3 markers `<<<<<<<`, `|||||||`, `=======`, `>>>>>>>`) in: "
                 + ", ".join(conflicts) + ". Resolve every one so that both improvements work together; no "
                 "marker may remain.")
    else:
        state = "The merge was clean; check that both improvements work together and fix what does not."
    return (
        f"# Recombine two versions of the coding agent\n\n"
        f"The source tree you work on (`agent/`) merges two versions of this agent that each changed their "
        f"common ancestor: version {ours.node_id} (yours) and version {theirs.node_id}. {state}\n\n"
        f"Integrate both ideas: keep what made each version succeed on the tasks below. Keep the result small "
        f"and coherent, and run the agent's own tests before you finish.\n\n"
        f"## Tasks only version {ours.node_id} solved\n{_task_lines(sorted(ours.solved - theirs.solved), problems)}\n\n"
        f"## Tasks only version {theirs.node_id} solved\n{_task_lines(sorted(theirs.solved - ours.solved), problems)}\n\n"
        f"## What version {ours.node_id} changed (diff from the common ancestor)\n{clip(ours_diff, limit // 2) or '(nothing)'}\n\n"
        f"## What version {theirs.node_id} changed (diff from the common ancestor)\n{clip(theirs_diff, limit // 2) or '(nothing)'}\n\n"
        f"## {CONTRACT_NOTE}\n"
    )


def _attempt_stats(ev: EvalView) -> dict[str, object]:
    art = Path(ev.trajectory_path).parent if ev.trajectory_path else None
    try:
        result = json.loads(read_text(art / "result.json")) if art is not None else {}
    except ValueError:
        result = {}
    result = result if isinstance(result, dict) else {}
    return {"task": ev.task_id, "outcome": ev.status, "steps": result.get("steps", "?"),
            "tokens": result.get("tokens", "?"), "exit": result.get("exit_reason", "?")}


def refine_problem(evals: Sequence[EvalView], limit: int) -> str | None:
    """The problem statement of a refinement, or None without a solved task to keep."""
    measured = [e for e in evals if e.measured]
    solved = [e for e in measured if e.status == "resolved"]
    if not solved:
        return None
    failed = [e for e in measured if e.status != "resolved"]

    def table(rows: Sequence[EvalView]) -> str:
        return "\n".join("- {task}: {outcome}, {steps} steps, {tokens} tokens, ended {exit}".format(**_attempt_stats(e))
                         for e in rows[:8]) or "- (none)"

    excerpt = render_trajectory(solved[0].trajectory_path, limit // 2)
    failed_excerpt = render_trajectory(failed[0].trajectory_path, limit // 4) if failed else "(none)"
    return (
        f"# Refine the coding agent: the same results with fewer steps and tokens\n\n"
        f"This version of the agent solved {len(solved)} of {len(measured)} tasks it was measured on. Make it "
        f"reach the same results with fewer steps and fewer tokens (for example: shorter prompts, less "
        f"verbose command output, stopping as soon as the fix is verified), without losing what makes it "
        f"succeed, and avoid what made it fail.\n\n"
        f"## Solved\n{table(solved)}\n\n## Not solved\n{table(failed)}\n\n"
        f"## One successful attempt (transcript, cut)\n{excerpt}\n\n"
        f"## One failed attempt (transcript, cut)\n{failed_excerpt}\n\n"
        f"## {CONTRACT_NOTE}\n"
    )
