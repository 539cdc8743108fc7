"""Level-1 trajectory evolution without sandboxes: summaries, operators, selection, the loop.

A recording chat function plays the scripted model: it answers by purpose and keeps every
message it was sent, so each test can check what material an operator received.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import pytest

from hgm.evaluation.attempts import AttemptEvolution, AttemptsPolicy, plan_generation
from hgm.evaluation.guidance import MAX_BRIEFS, AttemptBrief, variant, write_guidance
from hgm.evaluation.run_agent import AgentRun
from hgm.evaluation.selection import Features, agreement, choose, rank
from hgm.evaluation.summary import summarize_attempt
from hgm.gateway.chat import ChatReply, LLMCallError

PROBLEM = "`add(2, 3)` returns -1 instead of 5 (the REAL problem statement)"


def patch_for(path: str, old: str, new: str) -> str:
    return (f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-{old}\n+{new}\n")


class Model:
    """Scripted replies per purpose; records (purpose, attempt, messages) of every call."""

    def __init__(self, replies: Mapping[str, Sequence[Any]]) -> None:
        self.replies = {k: list(v) for k, v in replies.items()}
        self.calls: list[tuple[str, int | None, list[dict[str, str]]]] = []

    def chat_for(self, purpose: str, index: int | None = None):
        def call(messages: Sequence[Mapping[str, str]]) -> ChatReply:
            self.calls.append((purpose, index, [dict(m) for m in messages]))
            queue = self.replies.get(purpose, [])
            reply = queue.pop(0) if len(queue) > 1 else (queue[0] if queue else "no idea")
            if isinstance(reply, Exception):
                raise reply
            return ChatReply(reply, 10, 5)

        return call

    def sent(self, purpose: str) -> list[str]:
        return ["\n".join(m["content"] for m in msgs) for p, _, msgs in self.calls if p == purpose]


SUMMARY = json.dumps({"approach": "edited calc.add", "files": ["calc.py"], "key_changes": "sign",
                      "strategy": "read the code", "assumptions": "add adds", "checks": "none run"})


def guidance_reply(text: str) -> str:
    return json.dumps({"guidance": text})


def fake_run(patch: str, exit_reason: str = "submitted", tmp: Path | None = None) -> AgentRun:
    outputs = {"patch.diff": patch.encode(), "result.json": json.dumps({"exit_reason": exit_reason}).encode(),
               "trajectory.jsonl": b'{"step": 1, "action": "python3 repro.py"}\n'}
    return AgentRun("agent solve", 0, False, 1.0, outputs=outputs)


class FakeChecker:
    """Scores a patch by a marker in it: GOOD > OK > anything else; never sees hidden tests."""

    def check(self, patch: str, trajectory_path: Path | None) -> Features:
        regressions = 0 if "GOOD" in patch else (1 if "OK" in patch else 3)
        return Features(empty=not patch.strip(), applies=True, syntax_ok=True, regressions=regressions,
                        tests_run=3, size=len(patch.splitlines()))


def evolution(tmp_path: Path, model: Model, patches: Sequence[str], policy: AttemptsPolicy,
              spent=lambda: (0.0, 0)) -> tuple[AttemptEvolution, list[str | None]]:
    guidances: list[str | None] = []
    queue = list(patches)

    def solve(guidance: str | None, index: int) -> AgentRun:
        guidances.append(guidance)
        return fake_run(queue.pop(0) if queue else "")

    return AttemptEvolution(policy, PROBLEM, solve, FakeChecker(), model.chat_for, spent, tmp_path), guidances


# ---------------------------------------------------------------------------- summaries


def test_summary_sends_clipped_trajectory_and_patch_and_validates(tmp_path: Path) -> None:
    trajectory = tmp_path / "trajectory.jsonl"
    huge = "HEAD-OF-OUTPUT " + "x" * 50_000 + " TAIL-OF-OUTPUT"
    trajectory.write_text(json.dumps({"step": 1, "messages": [
        {"role": "system", "content": "system prompt"}, {"role": "user", "content": huge}]}) + "\n")
    model = Model({"summarize": [SUMMARY]})
    result = summarize_attempt(model.chat_for("summarize"), PROBLEM, trajectory, patch_for("calc.py", "a", "b"),
                               "submitted", limit=3000)
    assert result.error == "" and result.summary["files"] == ["calc.py"]
    [sent] = model.sent("summarize")
    assert PROBLEM in sent and "HEAD-OF-OUTPUT" in sent and "TAIL-OF-OUTPUT" in sent and "+b" in sent
    assert len(sent) < 6000  # the 50 kB observation was cut to head and tail


def test_a_bad_summary_is_retried_once_then_falls_back_with_the_error(tmp_path: Path) -> None:
    model = Model({"summarize": ["not json", '{"files": []}']})
    result = summarize_attempt(model.chat_for("summarize"), PROBLEM, None, patch_for("calc.py", "a", "b"),
                               "step_limit", limit=2000)
    assert len(model.calls) == 2 and "no JSON object" in result.error and "approach" in result.error
    assert result.summary["files"] == ["calc.py"] and "step_limit" in result.summary["checks"]


# ---------------------------------------------------------------------------- operators


def brief(index: int, approach: str, checks: str = "0 regressions") -> AttemptBrief:
    return AttemptBrief(index, {"approach": approach, "files": ["calc.py"]}, checks, "submitted")


@pytest.mark.parametrize("operator, briefs, shown", [
    ("revise", [brief(3, "APPROACH-THREE")], ["APPROACH-THREE", "deliberately different"]),
    ("recombine", [brief(1, "APPROACH-ONE"), brief(4, "APPROACH-FOUR")], ["APPROACH-ONE", "APPROACH-FOUR", "blind spots"]),
    ("refine", [brief(i, f"APPROACH-{i}") for i in range(1, 9)], [f"APPROACH-{i}" for i in range(1, MAX_BRIEFS + 1)]),
])
def test_each_operator_sends_the_problem_and_its_summaries(operator: str, briefs: list, shown: list) -> None:
    model = Model({operator: [guidance_reply("Reproduce with a script first, then fix calc.add only.")]})
    result = write_guidance(operator, model.chat_for(operator), PROBLEM, briefs)
    assert result.error == "" and result.text == "Reproduce with a script first, then fix calc.add only."
    [sent] = model.sent(operator)
    assert PROBLEM in sent and all(text in sent for text in shown)
    if operator == "refine":  # bounded: never more than MAX_BRIEFS summaries
        assert f"APPROACH-{MAX_BRIEFS + 1}" not in sent


def test_a_failed_operator_call_is_composed_from_the_summaries() -> None:
    model = Model({"recombine": [LLMCallError("gateway down", 503)]})
    result = write_guidance("recombine", model.chat_for("recombine"), PROBLEM, [brief(1, "ONE"), brief(2, "TWO")])
    assert "gateway down" in result.error and "ONE" in result.text and "TWO" in result.text
    assert len(model.calls) == 2  # retried once


def test_plan_uses_the_best_attempts_by_score() -> None:
    assert plan_generation([4, 1, 3, 2], 5) == [
        ("refine", (4, 1, 3, 2)), ("recombine", (4, 1)), ("revise", (4,)), ("revise", (1,)), ("revise", (3,))]
    assert plan_generation([2], 2) == [("refine", (2,)), ("revise", (2,))]
    assert variant(0) is None and variant(1) and variant(1) != variant(2)


# ---------------------------------------------------------------------------- selection


def test_ranking_order_and_agreement() -> None:
    feats = {
        1: Features(empty=True),
        2: Features(empty=False, applies=True, syntax_ok=True, regressions=1, size=2),
        3: Features(empty=False, applies=True, syntax_ok=True, regressions=0, repro="fail_pass", size=9),
        4: Features(empty=False, applies=True, syntax_ok=True, regressions=0, repro="none", size=1),
        5: Features(empty=False, applies=True, syntax_ok=False, regressions=0, size=1),
        6: Features(empty=False, applies=True, syntax_ok=True, regressions=0, repro="fail_pass", size=3),
    }
    assert rank(feats) == [6, 3, 4, 2, 5, 1]  # valid, no regressions, repro, agreement, smaller
    lines = {1: frozenset({("f", "+", "a")}), 2: frozenset({("f", "+", "a")}), 3: frozenset({("f", "+", "b")})}
    assert agreement(lines, {1, 2, 3}) == {1: 0.5, 2: 0.5, 3: 0.0}


def test_judge_picks_among_the_shortlist_and_its_failure_is_not_hidden() -> None:
    feats = {i: Features(empty=False, applies=True, syntax_ok=True, regressions=0, size=i) for i in (1, 2, 3)}
    model = Model({"judge": [json.dumps({"best": 3, "reason": "smallest correct"})]})
    picked = choose(feats, judge=model.chat_for("judge"), problem=PROBLEM, patches={1: "P1", 2: "P2", 3: "P3"})
    assert (picked.selected, picked.by) == (3, "judge") and "P3" in model.sent("judge")[0]
    broken = Model({"judge": [json.dumps({"best": 9})]})
    fallback = choose(feats, judge=broken.chat_for("judge"), problem=PROBLEM)
    assert fallback.selected == 1 and fallback.by == "ranking (judge failed)" and "1 to 3" in fallback.judge_error


# ---------------------------------------------------------------------------- the loop


def test_generations_build_on_the_two_best_and_the_real_problem(tmp_path: Path) -> None:
    model = Model({"summarize": [SUMMARY], "refine": [guidance_reply("REFINE-GUIDANCE: keep the best plan.")],
                   "recombine": [guidance_reply("RECOMBINE-GUIDANCE: merge both ideas.")],
                   "revise": [guidance_reply("REVISE-GUIDANCE: try another entry point.")]})
    # generation 1: attempts 1 and 3 are the best by score, attempt 3 is the latest
    patches = [patch_for("calc.py", "x", "OK"), patch_for("calc.py", "x", "bad"), patch_for("calc.py", "x", "GOOD"),
               patch_for("calc.py", "y", "GOOD"), patch_for("calc.py", "z", "GOOD"), patch_for("calc.py", "w", "bad")]
    evo, guidances = evolution(tmp_path, model, patches, AttemptsPolicy(attempts=3, generations=2))
    outcome = evo.run()
    ops = [(a.index, a.operator, a.parents) for a in outcome.attempts]
    assert ops == [(1, "sample", ()), (2, "sample", ()), (3, "sample", ()),
                   (4, "refine", (3, 1, 2)), (5, "recombine", (3, 1)), (6, "revise", (3,))]
    assert guidances[0] is None and guidances[1] and guidances[3].startswith("REFINE-GUIDANCE")
    assert guidances[4].startswith("RECOMBINE-GUIDANCE") and guidances[5].startswith("REVISE-GUIDANCE")
    [recombine_prompt] = model.sent("recombine")
    assert PROBLEM in recombine_prompt and "## Attempt 3" in recombine_prompt and "## Attempt 1" in recombine_prompt
    assert "## Attempt 2" not in recombine_prompt  # not the latest: the two best by score
    # summaries are made only where a later generation (or the judge) reads them
    assert sorted(i for p, i, _ in model.calls if p == "summarize") == [1, 2, 3]
    assert outcome.selected.index == 3 and outcome.choice.by == "ranking"
    records = outcome.records(str)
    assert [r.selected for r in records] == [False, False, True, False, False, False]
    assert records[4].guidance.startswith("RECOMBINE") and records[2].features["regressions"] == 0


def test_a_failed_summary_is_logged_and_the_generation_goes_on(tmp_path: Path) -> None:
    model = Model({"summarize": [LLMCallError("provider timeout", 504)],
                   "refine": [guidance_reply("Refined guidance that is long enough.")],
                   "recombine": [guidance_reply("Recombined guidance that is long enough.")]})
    patches = [patch_for("calc.py", "x", "GOOD"), patch_for("calc.py", "x", "OK"), "", ""]
    evo, guidances = evolution(tmp_path, model, patches, AttemptsPolicy(attempts=2, generations=2))
    outcome = evo.run()
    assert len(outcome.attempts) == 4  # the next generation ran all the same
    log = [json.loads(line) for line in (tmp_path / "attempts" / "log.jsonl").read_text().splitlines()]
    failed = [e for e in log if e["event"] == "summary_failed"]
    assert [e["attempt"] for e in failed] == [1, 2] and "provider timeout" in failed[0]["text"]
    assert "summary_failed" in outcome.records(str)[0].detail
    assert "no model summary" in outcome.attempts[0].summary["approach"]
    assert "Refined guidance" in guidances[2]


def test_budgets_stop_the_generations(tmp_path: Path) -> None:
    spend = {"tokens": 0}

    def spent() -> tuple[float, int]:
        spend["tokens"] += 400  # every look at the book: another attempt's worth of tokens
        return 0.0, spend["tokens"]

    model = Model({"summarize": [SUMMARY]})
    evo, _ = evolution(tmp_path, model, [patch_for("a.py", "x", "GOOD")] * 10,
                       AttemptsPolicy(attempts=5, generations=3, max_tokens=2000), spent=spent)
    outcome = evo.run()
    assert 1 <= len(outcome.attempts) < 15 and "token budget" in outcome.stopped
    assert any(json.loads(line)["event"] == "stopped" for line in (tmp_path / "attempts" / "log.jsonl").read_text().splitlines())


def test_the_judge_reads_summaries_and_its_failure_is_logged(tmp_path: Path) -> None:
    patches = [patch_for("calc.py", "x", "GOOD"), patch_for("calc.py", "y", "GOOD")]
    model = Model({"summarize": [SUMMARY], "judge": [json.dumps({"best": 2, "reason": "cleaner"})]})
    evo, _ = evolution(tmp_path / "ok", model, patches, AttemptsPolicy(attempts=2, generations=1, judge=True))
    outcome = evo.run()
    assert (outcome.choice.selected, outcome.choice.by) == (2, "judge")
    assert "edited calc.add" in model.sent("judge")[0]  # the judge reads the attempts' summaries
    broken = Model({"summarize": [SUMMARY], "judge": [LLMCallError("refused", 402)]})
    evo, _ = evolution(tmp_path / "bad", broken, patches, AttemptsPolicy(attempts=2, generations=1, judge=True))
    outcome = evo.run()
    assert outcome.choice.by == "ranking (judge failed)" and len(broken.sent("judge")) == 1  # 402: no retry
    log = (tmp_path / "bad" / "attempts" / "log.jsonl").read_text()
    assert "judge_failed" in log and "refused" in log
