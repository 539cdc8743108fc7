"""The lessons memory with a scripted model through a real gateway and a real archive.

Expansions run `hgm.evolve.expand.expand` for real (lesson, diagnosis, memory recall,
distillation, the admission gate's static checks); only the improve agent is replaced by
`ProposalImprover`, which implements each proposal literally (no sandbox). Results are
recorded as the executor records them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from archive import EvalRecord, Run
from archive.memory import MemoryBank, MemoryItem
from evaluators.canary import canary_for
from hgm.config import EvolveConfig, MemoryConfig
from hgm.evolve.diagnose import MEMORY_TITLE, DiagnosisContext, build_messages, fallback_problem
from hgm.evolve.expand import ExpandSetup, ExpansionOutcome, expand
from hgm.evolve.improve import ImproveLimits
from hgm.evolve.lessons import EvalView, Lesson
from hgm.evolve.memory import PURPOSE, RunMemory, comparison, polarity_of, render_memory
from hgm.gateway.chat import gateway_chat
from hgm.gateway import GatewayConfig, start_gateway
from hgm.gateway.redact import Redactor
from hgm.loop.session import seed_agent_tree
from tests.hgm.evolve.memory_world import REJECT, ProposalImprover

SECRET = "sk-proj-" + "Z" * 40
ENV_SECRET = "very-secret-token-value-123456"


def diagnosis(proposal: str) -> str:
    return json.dumps({
        "log_summary": "it stopped early", "what_went_wrong": "no check of its work",
        "improvement_proposal": proposal, "implementation_plan": "append a note to the prompts",
        "problem_description": f"Change the agent: {proposal}",
    })


def words(title: str, strategy: str = "Run the tests before submitting and read their output.", **extra: Any) -> str:
    return json.dumps({"title": title, "description": f"{title} (one line)", "strategy": strategy, **extra})


class World:
    """A run, a scripted gateway, the run's memory and an expansion set-up around them."""

    def __init__(self, tmp_path: Path, script: dict[str, Any], *, name: str = "run", bank: MemoryBank | None = None,
                 settings: MemoryConfig | None = None) -> None:
        self.tmp = tmp_path / name
        self.tmp.mkdir()
        self.run = Run.create(self.tmp / "run", {}, seed_agent_tree(self.tmp / "seed"))
        (self.tmp / "script.json").write_text(json.dumps(script), encoding="utf-8")
        self.calls: list[Any] = []
        self.gateway = start_gateway(GatewayConfig(model=f"scripted:{self.tmp / 'script.json'}"), self.calls.append)
        redact = Redactor.from_environ({"PROVIDER_API_KEY": ENV_SECRET})
        self.memory = RunMemory(self.run, settings or MemoryConfig(), "scripted:test",
                                gateway_chat(self.gateway.url, "hgm", 30), redact, bank)
        self.improver = ProposalImprover()
        self.setup = ExpandSetup(backend=None, access=self.gateway.access, gateway_url=self.gateway.url,  # type: ignore[arg-type]
                                 alias="hgm", model="scripted:test", tasks={}, evolve=EvolveConfig(),
                                 limits=ImproveLimits(), redact=redact, memory=self.memory, improve=self.improver)
        self.jobs = 0

    def close(self) -> None:
        self.gateway.close()
        self.memory.close()
        self.run.close()

    def expand(self, parent: int, evals: list[EvalView] | None = None) -> tuple[ExpansionOutcome, int | None]:
        """One expansion of `parent`, recorded as the executor records it."""
        self.jobs += 1
        source = self.tmp / f"checkout{self.jobs}"
        self.run.checkout(parent, source)
        outcome = expand(self.setup, parent, source, evals or [], random.Random(self.jobs), self.tmp / f"exp{self.jobs}",
                         {"run": "run", "job": f"j{self.jobs}", "node": parent}, lambda: (0.0, 0))
        record = outcome.record
        if record.status == "ok":
            child = self.run.add_node(parent, outcome.child_dir, "self_improve", record.lesson, record.diagnosis,
                                      expansion=record, admission=outcome.admission, memory=outcome.memory)
            return outcome, child
        self.run.record_expansion(record, admission=outcome.admission, memory=outcome.memory)
        return outcome, None

    def measure(self, node: int, results: dict[str, int]) -> None:
        for task, ok in results.items():
            self.run.record_eval(EvalRecord(node, task, "resolved" if ok else "unresolved"))

    def distill_calls(self) -> list[Any]:
        return [c for c in self.calls if c.tags.get("purpose") == PURPOSE]


@pytest.fixture
def worlds(tmp_path: Path):
    made: list[World] = []

    def make(script: dict[str, Any], **kw: Any) -> World:
        made.append(World(tmp_path, script, **{"name": f"w{len(made)}", **kw}))
        return made[-1]

    yield make
    for world in made:
        world.close()


# ---------------------------------------------------------------- distillation with the right evidence


def test_an_accepted_expansion_stores_an_unproven_item_with_the_gates_evidence(worlds) -> None:
    w = worlds({"diagnose": [diagnosis("Verify the patch by running the tests")],
                "distill": [words("Run tests before submitting")]})
    outcome, child = w.expand(0)
    assert child is not None and outcome.admission is not None
    [item] = w.run.memory()
    assert (item.stage, item.polarity, item.written_by, item.model) == ("decided", "unproven", "model", "scripted:test")
    assert (item.node_id, item.parent_id, item.run_key) == (child, 0, w.run.key)
    assert item.expansion_id == w.run.expansions(child_id=child)[0]["id"]
    assert item.diff_sha256 == outcome.admission.diff_sha256 != ""
    assert item.evidence["decision"] == "accepted" and item.evidence["failed_checks"] == []
    assert item.title == "Run tests before submitting" and item.lesson == "no_evals"
    [call] = w.distill_calls()  # one distillation, through the gateway, tagged with the job
    assert call.tags["job"] == "j1" and call.tags["node"] == "0"


def test_a_rejected_expansion_stores_a_hurt_item_naming_the_failed_check(worlds) -> None:
    w = worlds({"diagnose": [diagnosis(f"Keep notes beside the agent {REJECT}")],
                # the model claims the change helped: it may word the item, never judge it
                "distill": [words("Keep notes outside the package", polarity="helped",
                                  evidence={"decision": "accepted"})]})
    outcome, child = w.expand(0)
    assert child is None and outcome.admission is not None and outcome.admission.decision == "rejected"
    [item] = w.run.memory()
    assert item.polarity == "hurt" and item.node_id is None and item.parent_id == 0
    assert item.evidence["decision"] == "rejected" and item.evidence["failed_checks"] == ["outside_package"]
    assert item.evidence["reason"].startswith("outside_package:") and "notes.txt" in item.evidence["reason"]
    assert item.expansion_id == w.run.expansions()[0]["id"]


def test_unusable_replies_are_retried_once_then_the_item_is_built_from_the_evidence(worlds) -> None:
    w = worlds({"diagnose": [diagnosis("Read the failing test names first")],
                "distill": ["not json at all", '{"title": ""}']})
    w.expand(0)
    [item] = w.run.memory()
    assert item.written_by == "fallback" and len(w.distill_calls()) == 2
    assert item.title == "Read the failing test names first."  # the proposal's first sentence
    assert item.evidence["decision"] == "accepted" and item.polarity == "unproven"


def test_a_fallen_back_diagnosis_proposes_its_lesson_not_the_items_it_was_shown() -> None:
    from hgm.evolve.diagnose import Diagnosis
    from hgm.evolve.memory import proposal_of

    shown = render_memory([_item("x", "Keep notes outside the package", "stochastic", "hurt")], 900)
    problem = fallback_problem(DiagnosisContext(Lesson("stochastic"), memory=shown))
    proposal = proposal_of(Diagnosis(problem, None, True, 2))
    assert "stochastic" in proposal and "Keep notes" not in proposal and "Constraints" not in proposal


def test_fallback_words_need_no_model_call(worlds) -> None:
    w = worlds({"diagnose": [diagnosis(f"Keep notes beside the agent {REJECT}")], "distill": [words("unused")]},
               settings=MemoryConfig(words="fallback"))
    w.expand(0)
    [item] = w.run.memory()
    assert w.distill_calls() == [] and item.written_by == "fallback" and item.polarity == "hurt"
    assert item.title == "Keep notes beside the agent REJECT-ME." and item.evidence["failed_checks"] == ["outside_package"]
    assert MemoryConfig().words_by_model("openai/x") and not MemoryConfig().words_by_model("local/smollm2")


def test_comparison_with_the_parent_is_distilled_once_then_kept_up_to_date_from_counts(worlds) -> None:
    w = worlds({"diagnose": [diagnosis("Verify the patch")],
                "distill": [words("Verify the patch before submitting")]},
               settings=MemoryConfig(compare_after=3))
    _, child = w.expand(0)
    assert child is not None
    tags = lambda node: {"run": "run", "job": "cmp", "node": node}  # noqa: E731
    w.measure(0, {"a": 0, "b": 0, "c": 1, "d": 1})
    w.measure(child, {"a": 1, "b": 1})
    assert w.memory.after_eval(child, tags) == []  # two shared tasks: not yet
    w.measure(child, {"c": 1})
    [uid] = w.memory.after_eval(child, tags)
    [compared] = w.run.memory(stage="compared")
    assert compared.uid == uid and compared.polarity == "helped" and compared.expansion_id is not None
    assert {k: compared.evidence[k] for k in ("shared_tasks", "child_resolved", "parent_resolved", "wins", "losses")} \
        == {"shared_tasks": 3, "child_resolved": 3, "parent_resolved": 1, "wins": 2, "losses": 0}
    assert (compared.node_id, compared.parent_id) == (child, 0) and compared.diff_sha256
    calls = len(w.distill_calls())
    assert calls == 2
    # new measurements move the polarity; no new model call, the same item
    w.measure(child, {"d": 0})
    w.measure(0, {"e": 1})
    w.run.record_eval(EvalRecord(child, "e", "unresolved"))
    assert w.memory.after_eval(0, tags) == [uid]  # seen from the parent's side too
    [compared] = w.run.memory(stage="compared")
    assert compared.evidence["shared_tasks"] == 5 and (compared.evidence["wins"], compared.evidence["losses"]) == (2, 2)
    assert compared.polarity == "unproven" and len(w.distill_calls()) == calls
    assert w.memory.after_eval(0, tags) == []  # nothing new measured: nothing written


def test_polarity_follows_the_counts_only() -> None:
    assert polarity_of("decided", {"decision": "rejected"}) == "hurt"
    assert polarity_of("decided", {"decision": "accepted"}) == polarity_of("decided", {"decision": "no_change"}) == "unproven"
    counts = comparison({"a": 1, "b": 0, "c": 0, "x": 1}, {"a": 0, "b": 1, "c": 1})
    assert counts == {"shared_tasks": 3, "child_resolved": 1, "parent_resolved": 2, "wins": 1, "losses": 2}
    assert polarity_of("compared", counts) == "hurt" and polarity_of("compared", counts, margin=2) == "unproven"


# ---------------------------------------------------------------- retrieval and the diagnosis prompt


def _item(uid: str, title: str, lesson: str, polarity: str = "unproven", **kw: Any) -> MemoryItem:
    evidence = {"decision": "rejected", "reason": "own_tests: 2 tests fail", "failed_checks": ["own_tests"]} \
        if polarity == "hurt" else {"decision": "accepted"}
    return MemoryItem(uid, "decided", polarity, title, f"{title}, described", f"{title}: the strategy in detail.",
                      lesson=lesson, evidence=evidence, **kw)


def test_recall_returns_the_items_of_the_lesson_and_the_lineage_within_the_prompt_budget(worlds) -> None:
    w = worlds({}, settings=MemoryConfig(k=3, prompt_chars=700))
    key = w.run.key
    w.run.add_memory([
        _item("a", "Truncate long command outputs", "context_length", run_key=key),
        _item("b", "Parse the configuration with a stricter reader", "failed_task:iniconf-3", "hurt", run_key=key,
              parent_id=5),
        _item("c", "Retry the model call on timeouts", "stochastic", run_key=key),
        _item("d", "Check boolean parsing of config values", "failed_task:iniconf-3", run_key=key, parent_id=7),
        _item("e", "Summarise old steps when the context is full", "context_length", run_key=key),
    ])
    lesson = Lesson("failed_task", "iniconf-3", EvalView("iniconf-3", "unresolved"))
    ctx = DiagnosisContext(lesson, problem_statement="Boolean values in the config are parsed case-sensitively.")
    recalled = w.memory.recall(ctx, 0)
    assert {i.uid for i in recalled[:2]} == {"b", "d"} and len(recalled) == 3
    text = w.memory.render(recalled)
    assert len(text) <= 700 and "do not propose them again" in text
    avoid, tried = text.index("stricter reader"), text.index("boolean parsing")
    assert avoid < tried and "rejected by the admission gate (own_tests failed)" in text
    messages = build_messages(DiagnosisContext(lesson, memory=text))
    assert MEMORY_TITLE in messages[1]["content"] and "stricter reader" in messages[1]["content"]
    assert text in fallback_problem(DiagnosisContext(lesson, memory=text))  # the improve agent sees it on fallback


def test_render_never_exceeds_its_budget() -> None:
    items = [_item(str(i), f"Change number {i} " + "x" * 400, "stochastic", "hurt" if i % 2 else "unproven")
             for i in range(8)]
    for budget in (200, 500, 900, 3000):
        text = render_memory(items, budget)
        assert 0 < len(text) <= budget
    assert render_memory([], 900) == ""


def test_the_next_diagnosis_is_shown_what_earlier_expansions_did(worlds) -> None:
    first = diagnosis("Verify the patch by running the tests")
    second = diagnosis("Summarise long outputs")
    # the scripted model proposes something else once the memory shows its first proposal
    w = worlds({"diagnose": [{"reply": first, "cases": [{"contains": "Run tests before submitting", "reply": second}]}],
                "distill": [{"reply": words("Summarise outputs"),
                             "cases": [{"contains": "Verify the patch", "reply": words("Run tests before submitting")}]}]})
    w.expand(0)
    outcome, child = w.expand(0)
    assert w.improver.proposals == ["Verify the patch by running the tests", "Summarise long outputs"]
    [used] = outcome.memory.used
    assert used.title == "Run tests before submitting"
    assert [i.uid for i in w.run.memory_used(w.run.expansions(child_id=child)[0]["id"])] == [used.uid]


def test_a_second_run_with_the_bank_sees_the_first_runs_items(worlds, tmp_path: Path) -> None:
    bank_path = tmp_path / "lessons.db"
    script = {"diagnose": [diagnosis(f"Keep notes beside the agent {REJECT}")],
              "distill": [words("Keep notes outside the package")]}
    a = worlds(script, bank=MemoryBank.open(bank_path, create=True))
    a.expand(0)
    a.memory.sync_bank()
    b = worlds({"diagnose": [diagnosis("Something new")], "distill": [words("Something new entirely")]},
               name="b", bank=MemoryBank.open(bank_path, create=True))
    outcome, _ = b.expand(0)
    [used] = outcome.memory.used
    assert used.run_key == a.run.key != b.run.key and used.polarity == "hurt"
    # copied into the second run with its provenance; the first run's own items are not the second's
    assert [i.uid for i in b.run.memory(run_key=a.run.key)] == [used.uid]
    assert len(b.run.memory(run_key=b.run.key)) == 1
    b.memory.sync_bank()
    with MemoryBank.open(bank_path, writable=False) as bank:
        assert {i.run_key for i in bank.items()} == {a.run.key, b.run.key}


# ---------------------------------------------------------------- guards


def test_an_item_cannot_carry_a_key_or_the_canary(worlds) -> None:
    class T:
        instance_id, test_patch = "iniconf-3", "def test_hidden(): assert parse('TRUE')\n"

    canary = canary_for(T)
    w = worlds({"diagnose": [diagnosis(f"Use the key {SECRET} and {ENV_SECRET}")],
                "distill": [words(f"Leak {SECRET}", strategy=f"Read {canary} and {ENV_SECRET} from the tests.")]})
    w.expand(0)
    [item] = w.run.memory()
    stored = json.dumps(item.to_dict())
    assert SECRET not in stored and ENV_SECRET not in stored and canary not in stored
    assert item.written_by == "fallback"  # hidden test material reached the distiller: its words are not kept
    assert "[redacted]" in item.strategy
    # and the diagnosis-side fallback words were scrubbed as well
    w2 = worlds({"diagnose": [diagnosis(f"Copy {canary} into the prompt")], "distill": ["no json"]}, name="w2")
    w2.expand(0)
    [item2] = w2.run.memory()
    assert canary not in json.dumps(item2.to_dict()) and "[canary removed]" in item2.strategy


def test_a_retired_nodes_items_are_marked_and_never_recalled(worlds, tmp_path: Path) -> None:
    bank_path = tmp_path / "bank.db"
    w = worlds({"diagnose": [diagnosis("Check the configuration reader")],
                "distill": [words("Check the configuration reader")]}, bank=MemoryBank.open(bank_path, create=True))
    _, child = w.expand(0)
    w.memory.sync_bank()
    ctx = DiagnosisContext(Lesson("no_evals"), problem_statement="configuration reader")
    assert len(w.memory.recall(ctx, 0)) == 1
    w.run.retire(child, "it games the tests")
    [item] = w.run.memory()
    assert item.retired and w.memory.recall(ctx, 0) == []
    w.memory.sync_bank()
    with MemoryBank.open(bank_path, writable=False) as bank:
        assert [i.retired for i in bank.items()] == [True] and bank.search("configuration", 5) == []


def test_memory_off_and_infrastructure_failures_distil_nothing(worlds) -> None:
    w = worlds({"diagnose": [diagnosis("Verify")], "distill": [words("Verify")]})
    w.setup = ExpandSetup(**{**w.setup.__dict__, "memory": None})
    outcome, _ = w.expand(0)
    assert outcome.memory is None and w.run.memory() == [] and w.distill_calls() == []

    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("docker went away")

    w.setup = ExpandSetup(**{**w.setup.__dict__, "memory": w.memory, "improve": broken})
    outcome, _ = w.expand(0)
    assert outcome.memory is not None and outcome.memory.produced == () and w.run.memory() == []
