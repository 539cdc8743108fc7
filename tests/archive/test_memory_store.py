"""Memory items in the archive (schema 3): stored with their expansion, searched by BM25,
marked on retirement, migrated into older runs, and kept in a bank file shared by runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from archive import AdmissionRecord, ArchiveError, ExpansionRecord, Run, schema
from archive.memory import ExpansionMemory, MemoryBank, MemoryItem, fts_query
from tests.archive.helpers import downgrade, make_agent


def item(uid: str, title: str, **kw) -> MemoryItem:
    return MemoryItem(uid, kw.pop("stage", "decided"), kw.pop("polarity", "unproven"), title,
                      f"{title} (description)", f"{title}: strategy", **kw)


def test_an_expansions_items_are_stored_with_it_and_get_its_ids(run: Run, tmp_path: Path) -> None:
    made = item("m1", "Verify patches", run_key=run.key, parent_id=0)
    shown = item("s1", "Summarise outputs", run_key="run-elsewhere", node_id=7, parent_id=3, expansion_id=9)
    node = run.add_node(0, make_agent(tmp_path / "c"), "self_improve", expansion=ExpansionRecord(0, "ok"),
                        admission=AdmissionRecord(0, "accepted"), memory=ExpansionMemory((made,), (shown,)))
    expansion = run.expansions(child_id=node)[0]["id"]
    [mine] = run.memory(run_key=run.key)
    assert (mine.node_id, mine.expansion_id, mine.parent_id) == (node, expansion, 0)
    [copied] = run.memory(run_key="run-elsewhere")  # provenance kept: its own run's ids
    assert (copied.node_id, copied.expansion_id) == (7, 9)
    assert [i.uid for i in run.memory_used(expansion)] == ["s1"]
    failed = run.record_expansion(ExpansionRecord(0, "failed", reason="rejected"),
                                  memory=ExpansionMemory((item("m2", "Notes outside", run_key=run.key, parent_id=0),),
                                                         (shown,)))
    assert run.memory(uids=["m2"])[0].expansion_id == failed and run.memory(uids=["m2"])[0].node_id is None
    assert len(run.memory()) == 3  # a shown item is copied in once
    with pytest.raises(ValueError):
        MemoryItem("x", "decided", "great", "title")


def test_a_refused_expansion_stores_none_of_its_items(run: Run, tmp_path: Path) -> None:
    with pytest.raises(ValueError):  # an acceptance cannot ride on a failed expansion: nothing is written
        run.record_expansion(ExpansionRecord(0, "failed"), admission=AdmissionRecord(0, "accepted"),
                             memory=ExpansionMemory((item("m", "x y z", run_key=run.key),)))
    assert run.memory() == []


def test_search_ranks_by_the_words_and_ignores_query_syntax(run: Run) -> None:
    run.add_memory([item("a", "Truncate long outputs", lesson="context_length"),
                    item("b", "Parse booleans case-insensitively", lesson="failed_task:iniconf-3"),
                    item("c", "Retry on timeouts", lesson="stochastic")])
    assert [i.uid for i in run.memory_search("iniconf-3 booleans", 5)] == ["b"]
    assert run.memory_search('NEAR( "x" AND OR * :', 5) == []  # FTS syntax in a lesson is just words
    assert fts_query("A ab-cd, CD") == '"ab" OR "cd"'  # single letters and repeats dropped, all quoted
    assert run.memory(text="TIMEOUT")[0].uid == "c" and run.memory(polarity="hurt") == []


def test_retiring_a_node_marks_the_items_of_its_clade_only(run: Run, tmp_path: Path) -> None:
    a = run.add_node(0, make_agent(tmp_path / "a"))
    b = run.add_node(a, make_agent(tmp_path / "b"))
    c = run.add_node(0, make_agent(tmp_path / "c"))
    run.add_memory([item("about-a", "Alpha", run_key=run.key, node_id=a, parent_id=0),
                    item("failed-from-b", "Beta", run_key=run.key, parent_id=b),
                    item("about-c", "Gamma", run_key=run.key, node_id=c, parent_id=0),
                    item("other-run", "Delta", run_key="run-other", node_id=a, parent_id=0)])
    run.retire(a, "cheats")
    retired = {i.uid for i in run.memory() if i.retired}
    assert retired == {"about-a", "failed-from-b"}  # another run's node a is another node
    assert {i.uid for i in run.memory_search("alpha beta gamma delta", 10)} == {"about-c", "other-run"}


def test_a_schema_3_run_reads_without_memory_and_migrates_for_writing(run: Run) -> None:
    path = run.path
    run.close()
    downgrade(path / "hgm.db", 3)
    with Run.open(path) as reader:
        assert reader.schema_version == 3 and reader.memory() == [] and reader.memory_search("x y", 3) == []
    with Run.open(path, writable=True) as writer:
        assert writer.schema_version == schema.SCHEMA_VERSION == 4
        writer.add_memory([item("m", "Verify patches", run_key=writer.key)])
        assert [i.uid for i in writer.memory_search("verify", 3)] == ["m"]
    conn = sqlite3.connect(path / "hgm.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
    conn.close()


def test_the_bank_is_created_shared_kept_up_to_date_and_refuses_other_files(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "lessons.db"
    with pytest.raises(ArchiveError, match="does not exist"):
        MemoryBank.open(path)
    with MemoryBank.open(path, create=True) as bank:
        first = item("u", "Verify patches", run_key="r1", evidence={"wins": 1}, polarity="helped", created=1.0)
        assert bank.upsert([first]) == 1
        assert bank.upsert([first]) == 0  # nothing newer: unchanged
        newer = MemoryItem(**{**first.to_dict(), "evidence": {"wins": 0}, "polarity": "unproven", "updated": 2.0})
        assert bank.upsert([newer]) == 1
        [stored] = bank.items()
        assert stored.polarity == "unproven" and stored.evidence == {"wins": 0}
        older_retired = MemoryItem(**{**first.to_dict(), "retired": True, "updated": 1.5})
        assert bank.upsert([older_retired]) == 1 and bank.items()[0].retired  # a retirement always sticks
    for bad, message in ((run.path / "hgm.db", "hgm run database"), (tmp_path, "not a file")):
        with pytest.raises(ArchiveError, match=message):
            MemoryBank.open(bad, create=True)
    junk = tmp_path / "junk.db"
    junk.write_text("hello")
    with pytest.raises(ArchiveError, match="not SQLite"):
        MemoryBank.check(junk)
    assert junk.read_text() == "hello"
