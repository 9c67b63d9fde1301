"""Freshness on the user's own knowledge base: the fact found, the change proposed, the chunk always put back.

Qdrant local mode and the real MiniLM; the model's answers are replaced where the test is about the store
(an exception or a stop in the middle of the run), and asked of the real model in the slow test.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings
from core.evaluation import fact_edit, freshness
from core.evaluation.fact_edit import OwnFact, edited_chunk, fact_words, own_facts, propose, restore_pending
from core.evaluation.freshness import run_fact_change
from core.evaluation.questions import EvalQuestion
from core.evaluation.report import Cell, RunData
from core.evaluation.runner import EvalRequest
from core.ingest import Upload, ingest
from core.models import EmbeddedEngine, ModelCatalog
from core.records import Records
from core.store import Store
from core.strategies import Answer, Runtime, Strategy, presets
from core.template_library import TemplateLibrary

MANUAL = (
    b"Consoles\n\nA default Debian system offers six switchable character consoles. "
    b"The Debian Project was founded by Ian Murdock in 1993. "
    b"The barn holds 40 dairy cows and two horses.\n\nUmask\n\nA umask of 0002 makes new files writable by the group."
)


@pytest.mark.parametrize(
    ("sentence", "expected", "old", "new"),
    [
        ("A default Debian system offers six switchable character consoles.", "Six.", "six", "seven"),
        ("A umask of 0002 makes new files writable by the group.", "0002", "0002", "0003"),
        ("The Debian Project was founded by Ian Murdock in 1993.", "Ian Murdock", "Ian Murdock", "Ada Fenwick"),
        ("The Debian Project was founded by Ian Murdock in 1993.", "in 1993", "1993", "1994"),
        ("Type reset when the screen goes berserk.", "reset", "reset", "quillon"),
        ("Version 3.8 of the firmware ships in May.", "3.8", "3.8", "3.9"),
        ("Barn 1400 holds 40 cows.", "40 cows", "40", "41"),  # the number itself, not the one it is part of
        ("带薪产假为20周。", "20周", "20", "21"),
    ],
)
def test_the_fact_is_found_in_its_sentence_and_a_change_proposed(
    sentence: str, expected: str, old: str, new: str
) -> None:
    found = fact_words(sentence, expected)
    assert found is not None and found[0] == old and sentence[found[1] : found[1] + len(old)] == old
    assert propose(old) == new


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [("The barn holds 40 cows.", "41"), ("Use apt-get to install it.", "apt"), ("Nothing here.", "...")],
)
def test_no_fact_is_offered_when_the_sentence_does_not_state_the_answer(sentence: str, expected: str) -> None:
    assert fact_words(sentence, expected) is None


@pytest.fixture
def manual(store: Store, kb: str) -> str:
    ingest(store, kb, [Upload("manual.txt", MANUAL)])
    return kb


def _fact(store: Store, kb: str, sentence: str, old: str, new: str, question: str) -> OwnFact:
    [doc] = store.list_documents(kb)
    [chunk] = [h for h in store.chunks_of(kb, doc.doc_id) if sentence in h.text]
    return OwnFact(question, old, "RAG", kb, doc.doc_id, doc.filename, chunk.page, chunk.chunk_index, sentence, old,
                   new, sentence.index(old))  # fmt: skip


def _stored(store: Store, kb: str, fact: OwnFact) -> str:
    """The point as Qdrant holds it (payload and vectors), as text: equal text is the same point, byte for byte."""
    record = store.get_point(kb, fact.doc_id, fact.chunk_index)
    assert record is not None
    return json.dumps({"payload": record.payload, "vector": fact_edit._vector_json(record.vector)}, sort_keys=True)


def _runtime(store: Store, tmp_path: Path) -> Runtime:
    settings = Settings.from_env(ollama_host=None)
    return Runtime(store, TemplateLibrary(tmp_path / "t"), ModelCatalog(settings, EmbeddedEngine(), None),
                   Records(tmp_path / "r.sqlite"))  # fmt: skip


def _cows(store: Store, kb: str) -> OwnFact:
    cows = "The barn holds 40 dairy cows and two horses."
    return _fact(store, kb, cows, "40", "41", "How many cows does the barn hold?")


class Interrupt(RuntimeError):
    pass


@pytest.mark.parametrize("how", ["exception", "stop"])
def test_a_run_that_fails_or_stops_halfway_puts_the_chunk_back_byte_for_byte(
    store: Store, manual: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    fact = _cows(store, manual)
    before = _stored(store, manual, fact)
    backups = tmp_path / "backups"
    cancel = threading.Event()
    seen: list[str] = []

    def after_edit() -> None:
        seen.append(_stored(store, manual, fact))
        assert list(backups.glob("*.json")), "the original is on disk while the chunk is edited"
        if how == "exception":
            raise Interrupt("the model crashed")
        cancel.set()

    def ask(runtime: Runtime, strategy: Strategy, question: str, flag: Any) -> Answer:
        hits = store.search(manual, question, k=1)
        if "41 dairy cows" in hits[0].text:
            after_edit()
        return Answer(question, strategy, text=hits[0].text, sources=hits)

    monkeypatch.setattr(freshness, "_ask", ask)
    rag = Strategy("RAG", "m", "t", retrieval=True, kb=manual, top_k=1)
    ft = Strategy("FT", "m", "t")
    runtime = _runtime(store, tmp_path)
    if how == "exception":
        with pytest.raises(Interrupt):
            run_fact_change(runtime, fact, "41", [rag, ft], backups, cancel=cancel)
    else:
        rows = run_fact_change(runtime, fact, "41", [rag, ft], backups, cancel=cancel)
        assert [r.strategy for r in rows] == ["RAG"] and rows[0].retrieved_new is True  # FT was never asked
    assert seen and seen[0] != before and "41 dairy cows" in seen[0]  # it was edited mid-run
    assert _stored(store, manual, fact) == before
    assert not list(backups.glob("*.json"))
    assert "40 dairy cows" in store.search(manual, fact.question, k=1)[0].text
    assert "41" not in store.search(manual, fact.question, k=1, mode="sparse")[0].text  # keyword side too


def test_a_killed_run_leaves_the_original_on_disk_and_the_next_visit_puts_it_back(
    store: Store, manual: str, tmp_path: Path
) -> None:
    fact = _fact(store, manual, "The Debian Project was founded by Ian Murdock in 1993.", "Ian Murdock",
                 "Ada Fenwick", "Who founded the Debian Project?")  # fmt: skip
    before = _stored(store, manual, fact)
    backups = tmp_path / "backups"
    edit = edited_chunk(store, manual, fact, "Ada Fenwick", backups)
    changed = edit.__enter__()  # the process dies here: the block never ends
    assert "founded by Ada Fenwick in 1993" in changed
    assert "Ada Fenwick" in store.search(manual, fact.question, k=1)[0].text
    assert restore_pending(store, backups) == [f"manual.txt ({manual})"]
    assert _stored(store, manual, fact) == before and not list(backups.glob("*.json"))
    assert restore_pending(store, backups) == []


def test_a_sentence_gone_since_the_run_or_an_unchanged_fact_is_refused_before_any_edit(
    store: Store, manual: str, tmp_path: Path
) -> None:
    fact = _cows(store, manual)
    before = _stored(store, manual, fact)
    with (
        pytest.raises(Exception, match="no longer holds"),
        edited_chunk(store, manual, replace(fact, sentence="The barn holds 12 goats."), "13", tmp_path),
    ):
        pass
    with pytest.raises(Exception, match="changes nothing"), edited_chunk(store, manual, fact, " 40 ", tmp_path):
        pass
    assert _stored(store, manual, fact) == before and not list(tmp_path.glob("*.json"))


def test_facts_come_from_right_answers_with_retrieval_on_the_knowledge_base() -> None:
    questions = (EvalQuestion("q1", "How many consoles?", "Six."), EvalQuestion("q2", "Who founded it?", "Ian Murdock"))
    rag = Strategy("RAG", "m", "t", retrieval=True, kb="manual")
    pe = Strategy("PE", "m", "t")
    source = {"text": "Consoles\n\nA default Debian system offers six switchable character consoles.", "doc_id": "d",
              "filename": "manual.txt", "page": 3, "chunk_index": 0}  # fmt: skip

    def cell(q: str, s: str, right: bool) -> Cell:
        return Cell(q, s, "answer", None, None, None, None, None, {"correct": right}, [source] if s == "RAG" else [])

    cells = {("q1", "RAG"): cell("q1", "RAG", True), ("q2", "RAG"): cell("q2", "RAG", False),
             ("q1", "PE"): cell("q1", "PE", True), ("q2", "PE"): cell("q2", "PE", True)}  # fmt: skip
    run = RunData(1, "r", "now", "done", "set", EvalRequest("r", "set", questions, (pe, rag)), cells)
    [fact] = own_facts(run, "manual")
    assert (fact.question, fact.strategy, fact.sentence, fact.old, fact.new, fact.page) == (
        "How many consoles?", "RAG", "A default Debian system offers six switchable character consoles.", "six",
        "seven", 3,
    )  # fmt: skip
    assert own_facts(run, "another") == []


@pytest.mark.slow
def test_rag_reads_the_changed_fact_of_the_users_document_and_the_chunk_comes_back(
    store: Store, manual: str, tmp_path: Path
) -> None:
    fact = _cows(store, manual)
    before = _stored(store, manual, fact)
    runtime = _runtime(store, tmp_path)
    rag = replace(presets(runtime.models.available(), manual)["RAG"].strategy, max_tokens=48)
    steps: list[str] = []
    [row] = run_fact_change(runtime, fact, "41", [rag], tmp_path / "b", progress=lambda d, t, m: steps.append(m))
    assert row.strategy == "RAG" and row.retrieved_new is True, row
    assert (row.old_answer, row.new_answer) == ("40", "41")
    assert steps[-1] == "Restored manual.txt, part 1" and len(steps) == 4
    assert _stored(store, manual, fact) == before
