"""records.sqlite: schema version, the migration of a file from before versioning, runs and their answers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.records import _ANSWERS, SCHEMA_VERSION, Records

ROW = {
    "created": "2025-01-01T00:00:00+00:00",
    "question": "How long is parental leave?",
    "strategy": "RAG",
    "model": "llama.cpp:x",
    "template": "RAG with citations",
    "template_version": 1,
    "answer": "20 weeks.",
    "error": None,
    "ttft_s": 0.1,
    "total_s": 0.5,
    "prompt_tokens": 100,
    "completion_tokens": 5,
    "detail": {"sources": []},
}


def version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_a_file_from_before_versioning_is_migrated_with_its_answers(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    with sqlite3.connect(path) as conn:  # what the app wrote before schema versions
        conn.executescript(_ANSWERS)
        conn.execute(
            "INSERT INTO answers (created, question, strategy, model, template, template_version, answer, detail) "
            "VALUES ('2024-12-01', 'Old question?', 'PE', 'm', 't', 1, 'old answer', '{\"prompt\": \"p\"}')"
        )
    assert version(path) == 0
    records = Records(path)
    assert records.migrated_from == 0 and version(path) == SCHEMA_VERSION == 2
    [old] = records.answers()
    assert (old.question, old.answer, old.detail, old.run_id, old.metrics) == (
        "Old question?", "old answer", {"prompt": "p"}, None, None
    )  # fmt: skip
    run = records.create_run(created="now", name="r", question_set="s", set_hash="h", spec={"questions": []})
    records.add_answer(ROW | {"run_id": run, "question_id": "q1", "metrics": {"correct": True}})
    assert Records(path).migrated_from == SCHEMA_VERSION  # opening again changes nothing
    assert [a.metrics for a in records.run_answers(run)] == [{"correct": True}]


def test_a_newer_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigError, match="newer than this app"):
        Records(path)
    assert version(path) == SCHEMA_VERSION + 1


def test_evaluation_answers_stay_out_of_compare_history_and_a_cell_is_stored_once(tmp_path: Path) -> None:
    records = Records(tmp_path / "records.sqlite")
    records.add_answer(ROW)
    run = records.create_run(created="now", name="r", question_set="s", set_hash="h", spec={})
    cell = ROW | {"question": "Eval question?", "run_id": run, "question_id": "q1", "metrics": {"correct": False}}
    records.add_answer(cell)
    records.add_answer(cell | {"answer": "second try", "metrics": {"correct": True}})
    assert records.recent_questions() == [ROW["question"]]
    assert [a.question for a in records.answers()] == [ROW["question"]]
    assert [(a.answer, a.metrics) for a in records.run_answers(run)] == [("second try", {"correct": True})]
    assert records.done_cells(run) == {("q1", "RAG")}
    records.set_run_status(run, "done", "later")
    assert [(r.id, r.status, r.finished) for r in records.runs(set_hash="h")] == [(run, "done", "later")]
    assert records.runs(set_hash="other") == []
    records.delete_run(run)
    assert records.get_run(run) is None and records.run_answers(run) == []
    assert len(records.answers()) == 1
