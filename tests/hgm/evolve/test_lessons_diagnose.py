"""Lesson picking, diagnosis parsing/retry/fallback, acceptance rules, context rendering."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from hgm.evolve.acceptance import diff_problem
from hgm.evolve.context import clip, grading_report, render_trajectory, source_excerpt
from hgm.evolve.diagnose import (
    DiagnosisContext,
    build_messages,
    diagnose,
    extract_json,
    fallback_problem,
    parse_reply,
)
from hgm.evolve.lessons import EvalView, Lesson, pick_lesson
from hgm.gateway.chat import ChatReply, LLMCallError

GOOD = {
    "log_summary": "ran ls, then submitted",
    "what_went_wrong": "never edited the source",
    "improvement_proposal": "check the diff before submitting",
    "implementation_plan": "in agent/loop.py, refuse submit when git diff is empty",
    "problem_description": "The agent submits without changing anything; make it verify its diff first.",
}


def views(*statuses: str) -> list[EvalView]:
    return [EvalView(f"t{i}", s) for i, s in enumerate(statuses)]


# ---------------------------------------------------------------- lessons
def test_no_measured_eval_gives_general_lesson() -> None:
    lesson = pick_lesson(views("error_infra", "abandoned"), random.Random(0))
    assert lesson.kind == "no_evals"


def test_default_lesson_is_a_failed_task_and_never_a_resolved_one() -> None:
    evals = views("resolved", "unresolved", "resolved", "patch_failed")
    kinds = Counter()
    for seed in range(400):
        lesson = pick_lesson(evals, random.Random(seed))
        kinds[lesson.kind] += 1
        if lesson.kind == "failed_task":
            assert lesson.task_id in ("t1", "t3")
            assert lesson.evaluation is not None and lesson.evaluation.status != "resolved"
    # no empty patches: 25% stochastic, the rest failed tasks
    assert kinds["empty_patches"] == 0
    assert 0.17 < kinds["stochastic"] / 400 < 0.33
    assert kinds["failed_task"] == 400 - kinds["stochastic"]


def test_empty_patch_lesson_when_many_empty_patches() -> None:
    evals = views("empty_patch", "empty_patch", "unresolved", "resolved")
    kinds = Counter(pick_lesson(evals, random.Random(s)).kind for s in range(400))
    assert 0.17 < kinds["empty_patches"] / 400 < 0.33


def test_context_length_lesson_from_trajectory(tmp_path) -> None:
    traj = tmp_path / "t.jsonl"
    traj.write_text(json.dumps({"llm_error": "HTTP 400: maximum context length is 4096 tokens"}) + "\n")
    evals = [EvalView("t0", "unresolved", trajectory_path=str(traj)), EvalView("t1", "resolved")]
    kinds = Counter(pick_lesson(evals, random.Random(s)).kind for s in range(400))
    assert kinds["context_length"] > 0
    plain = [EvalView("t0", "unresolved"), EvalView("t1", "resolved")]
    assert all(pick_lesson(plain, random.Random(s)).kind != "context_length" for s in range(200))


def test_all_resolved_still_gives_a_task() -> None:
    lesson = pick_lesson(views("resolved", "resolved"), random.Random(3))
    assert lesson.kind in ("failed_task", "stochastic")


# ---------------------------------------------------------------- diagnosis
def ctx() -> DiagnosisContext:
    lesson = Lesson("failed_task", "t1", EvalView("t1", "unresolved"), (("unresolved", 1),))
    return DiagnosisContext(lesson, agent_source="=== agent/loop.py ===\nprint()", problem_statement="Fix bug X",
                            trajectory="[assistant] ls", patch="", grading_report="FAILED test_x")


def test_extract_json_fenced_bare_and_garbage() -> None:
    assert extract_json("blah ```json\n{\"a\": 1}\n``` tail") == {"a": 1}
    assert extract_json('Sure! {"a": {"b": 2}} done') == {"a": {"b": 2}}
    with pytest.raises(ValueError):
        extract_json("no json here")
    with pytest.raises(ValueError):
        extract_json("[1, 2]")


def test_parse_reply_accepts_reference_field_names() -> None:
    data = dict(GOOD)
    data["implementation_suggestion"] = data.pop("implementation_plan")
    data["log_summarization"] = data.pop("log_summary")
    reply = parse_reply(json.dumps(data))
    assert reply.implementation_plan.startswith("in agent/loop.py")
    assert reply.log_summary == "ran ls, then submitted"


def test_parse_reply_rejects_missing_fields() -> None:
    with pytest.raises(ValueError, match="problem_description"):
        parse_reply(json.dumps({k: v for k, v in GOOD.items() if k != "problem_description"}))


def test_prompt_shows_report_not_test_patch_by_default() -> None:
    c = ctx()
    text = "\n".join(m["content"] for m in build_messages(c))
    assert "FAILED test_x" in text and "Fix bug X" in text and "agent/loop.py" in text
    assert "Hidden test patch" not in text
    leaky = DiagnosisContext(c.lesson, test_patch="def test_secret(): pass")
    assert "test_secret" in "\n".join(m["content"] for m in build_messages(leaky))


def test_diagnose_valid_first_time() -> None:
    calls = []

    def chat_fn(messages):
        calls.append(messages)
        return ChatReply(json.dumps(GOOD), 10, 5)

    d = diagnose(ctx(), chat_fn)
    assert not d.fell_back and d.attempts == 1 and len(calls) == 1
    assert GOOD["problem_description"] in d.problem
    assert d.prompt_tokens == 10 and d.completion_tokens == 5


def test_diagnose_retries_once_with_the_error_then_succeeds() -> None:
    replies = iter(["I think the agent is fine.", "```json\n" + json.dumps(GOOD) + "\n```"])
    seen = []

    def chat_fn(messages):
        seen.append(messages)
        return ChatReply(next(replies))

    d = diagnose(ctx(), chat_fn, retries=1)
    assert not d.fell_back and d.attempts == 2
    assert "unusable" in seen[1][-1]["content"]
    assert d.errors and "no JSON" in d.errors[0]


def test_diagnose_falls_back_after_bad_replies_and_records_it() -> None:
    d = diagnose(ctx(), lambda m: ChatReply("{\"nonsense\": true}"), retries=1)
    assert d.fell_back and d.attempts == 2 and d.reply is None
    assert "t1" in d.problem and "FAILED test_x" in d.problem
    assert json.loads(d.summary())["fell_back"] is True


def test_diagnose_falls_back_on_gateway_errors_without_retrying_a_spent_budget() -> None:
    calls = []

    def broke(messages):
        calls.append(1)
        raise LLMCallError("budget spent", status=402)

    d = diagnose(ctx(), broke, retries=3)
    assert d.fell_back and len(calls) == 1


def test_fallback_problem_for_every_lesson_kind() -> None:
    for kind in ("failed_task", "empty_patches", "stochastic", "context_length", "no_evals"):
        text = fallback_problem(DiagnosisContext(Lesson(kind)))
        assert "agent/tests/test_contract" in text and len(text) > 100


# ---------------------------------------------------------------- acceptance
DIFF = """diff --git a/agent/prompts.py b/agent/prompts.py
index 1..2 100644
--- a/agent/prompts.py
+++ b/agent/prompts.py
@@ -1 +1,2 @@
 x
+y
"""

def test_acceptance_rules() -> None:
    """Only the shape of the diff is judged here; everything else is the gate's (test_gate.py)."""
    assert diff_problem(DIFF) is None
    assert "empty" in diff_problem("  \n")
    assert "not a git diff" in diff_problem("hello")


# ---------------------------------------------------------------- context
def test_clip_keeps_head_and_tail() -> None:
    text = "A" * 500 + "B" * 500
    out = clip(text, 200)
    assert len(out) <= 200 and out.startswith("A") and out.endswith("B")
    assert clip("short", 100) == "short"


def test_render_trajectory_survives_garbage(tmp_path) -> None:
    traj = tmp_path / "trajectory.jsonl"
    lines = [
        json.dumps({"step": 1, "messages": [{"role": "system", "content": "SYSTEM PROMPT"},
                                             {"role": "user", "content": "task text"},
                                             {"role": "assistant", "content": "ls"}]}),
        "not json at all",
        json.dumps([1, 2, 3]),
        json.dumps({"step": 2, "llm_error": "HTTP 500"}),
    ]
    traj.write_text("\n".join(lines) + "\n\xff")
    out = render_trajectory(traj, 10_000)
    assert "task text" in out and "SYSTEM PROMPT" not in out and "not json" in out and "HTTP 500" in out
    assert render_trajectory(tmp_path / "missing", 100) == "(no trajectory recorded)"
    assert len(render_trajectory(traj, 60)) <= 60


def test_grading_report_lists_failed_tests() -> None:
    report = {"tests_status": {"FAIL_TO_PASS": {"success": [], "failure": ["tests/test_a.py::test_x"]},
                               "PASS_TO_PASS": {"success": ["t2"], "failure": []}}}
    out = grading_report(report, "lots of output\nAssertionError: 1 != 2", "", 2000)
    assert "FAILED tests/test_a.py::test_x" in out and "AssertionError" in out
    assert "FAIL_TO_PASS: 0 passed, 1 failed" in out


def test_source_excerpt_puts_code_before_tests(tmp_path) -> None:
    (tmp_path / "agent" / "tests").mkdir(parents=True)
    (tmp_path / "agent" / "tests" / "test_a.py").write_text("TEST")
    (tmp_path / "agent" / "loop.py").write_text("CODE")
    out = source_excerpt(tmp_path, 10_000)
    assert out.index("CODE") < out.index("TEST")
    assert source_excerpt(tmp_path / "nope", 100) == "(agent source not found)"
