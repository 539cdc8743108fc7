"""Choosing among attempts with what the agent may see: features, ranking, an optional judge.

A candidate's `Features` come from `checks` (a sandbox without the hidden tests) and from
the other candidates (agreement). Ranking is lexicographic, in this order: the patch is
non-empty, applies and is syntactically valid; the repository's tests that passed before
still pass; the agent's own reproduction script fails before the patch and passes after;
agreement with the other candidates; a smaller patch. An optional listwise judgement by the
model picks among the best few; its failures are returned to be logged, and the ranking's
choice then stands (recorded as such, never passed off as the judge's).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from hgm.evaluation.transcript import clip
from hgm.gateway.chat import Answer, ChatFn, ask_json, extract_json

JUDGE_PURPOSE = "judge"
JUDGE_SHORTLIST = 4
JUDGE_SCHEMA = {"type": "object", "required": ["best", "reason"],
                "properties": {"best": {"type": "integer"}, "reason": {"type": "string", "maxLength": 300}}}
# own reproduction script: fails before and passes after > none written / did not reproduce > not fixed
REPRO_SCORE = {"fail_pass": 2, "none": 1, "pass_pass": 1, "fail_fail": 0, "pass_fail": 0}


@dataclass
class Features:
    """What selection knows of one candidate patch."""

    empty: bool = True
    applies: bool | None = None  # None: not checked (e.g. the check sandbox failed)
    syntax_ok: bool | None = None
    regressions: int | None = None  # tests passing before the patch and not after; None: none run
    tests_run: int = 0
    repro: str = "none"  # the agent's own script: fail_pass | fail_fail | pass_pass | pass_fail | none
    repro_scripts: tuple[str, ...] = ()
    agreement: float = 0.0  # mean similarity of its source changes to the other valid candidates
    size: int = 0  # changed source lines
    error: str = ""  # why a check could not run (infrastructure, not the candidate's doing)

    @property
    def valid(self) -> bool:
        return not self.empty and self.applies is not False and self.syntax_ok is not False

    def key(self) -> tuple:
        """Larger is better; compare keys to rank candidates."""
        regress = 1 if self.regressions is None else (2 if self.regressions == 0 else 0)
        return (self.valid, regress, REPRO_SCORE.get(self.repro, 0), round(self.agreement, 6), -self.size)

    def describe(self) -> str:
        """One line for operator and judge prompts (only agent-visible facts)."""
        if self.empty:
            return "empty patch (changed nothing)"
        parts = [f"{self.size} changed source lines"]
        if self.applies is False:
            parts.append("the patch does not apply")
        if self.syntax_ok is False:
            parts.append("a changed Python file does not compile")
        if self.regressions is not None:
            parts.append(f"{self.regressions} of {self.tests_run} previously passing repository tests now fail")
        parts.append({"fail_pass": "its reproduction script fails before the patch and passes after",
                      "fail_fail": "its reproduction script still fails after the patch",
                      "pass_pass": "its reproduction script passes even without the patch",
                      "pass_fail": "its reproduction script passes before the patch and fails after",
                      }.get(self.repro, "no reproduction script"))
        parts.append(f"agreement with other attempts {self.agreement:.2f}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "valid": self.valid, "repro_scripts": list(self.repro_scripts)}


def rank(features: Mapping[int, Features]) -> list[int]:
    """Candidate ids best first (ties: the earlier attempt first)."""
    return sorted(features, key=lambda i: (tuple(-x for x in features[i].key()), i))


def agreement(lines: Mapping[int, frozenset], valid: set[int]) -> dict[int, float]:
    """Each candidate's mean Jaccard similarity of source changes to the other valid candidates."""
    out = {}
    for i, mine in lines.items():
        others = [lines[j] for j in valid if j != i and j in lines]
        if not mine or not others:
            out[i] = 0.0
            continue
        out[i] = sum(len(mine & theirs) / len(mine | theirs) for theirs in others if mine | theirs) / len(others)
    return out


@dataclass(frozen=True)
class Choice:
    """The selected candidate and how it was chosen."""

    selected: int
    by: str  # "ranking" | "judge" | "ranking (judge failed)"
    ranking: tuple[int, ...]
    judge_error: str = ""
    judge_reason: str = ""


def _judge_messages(problem: str, shortlist: Sequence[tuple[int, Mapping[str, Any], str, Features]]) -> list[dict[str, str]]:
    blocks = []
    for number, (_, summary, patch, feats) in enumerate(shortlist, 1):
        blocks.append(f"## Candidate {number}\nSummary: {json.dumps(summary, ensure_ascii=False)}\n"
                      f"Checks: {feats.describe()}\nPatch:\n{clip(patch, 1500)}")
    user = (f"# Issue\n{clip(problem, 2000)}\n\n" + "\n\n".join(blocks) +
            f'\n\nWhich candidate fixes the issue correctly with the smallest change? Reply with ONE JSON '
            f'object only: {{"best": <candidate number 1-{len(shortlist)}>, "reason": "<one sentence>"}}')
    system = "You review candidate patches for a software issue and pick the one most likely to be correct."
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _judge_parser(n: int):
    def parse(text: str) -> tuple[int, str]:
        data = extract_json(text)
        best = data.get("best")
        if isinstance(best, str) and best.strip().isdigit():
            best = int(best.strip())
        if not isinstance(best, int) or isinstance(best, bool) or not 1 <= best <= n:
            raise ValueError(f'"best" must be a candidate number from 1 to {n}')
        return best, str(data.get("reason", ""))[:500]

    return parse


def choose(
    features: Mapping[int, Features],
    *,
    judge: ChatFn | None = None,
    problem: str = "",
    summaries: Mapping[int, Mapping[str, Any]] | None = None,
    patches: Mapping[int, str] | None = None,
) -> Choice:
    """Rank the candidates; with `judge`, let the model pick among the best few valid ones."""
    order = rank(features)
    shortlist = [i for i in order if features[i].valid][:JUDGE_SHORTLIST]
    if judge is None or len(shortlist) < 2:
        return Choice(order[0], "ranking", tuple(order))
    items = [(i, (summaries or {}).get(i, {}), (patches or {}).get(i, ""), features[i]) for i in shortlist]
    answer: Answer[tuple[int, str]] = ask_json(judge, _judge_messages(problem, items), _judge_parser(len(items)))
    if answer.value is None:
        return Choice(order[0], "ranking (judge failed)", tuple(order), judge_error=answer.error)
    best, reason = answer.value
    return Choice(shortlist[best - 1], "judge", tuple(order), judge_reason=reason)
