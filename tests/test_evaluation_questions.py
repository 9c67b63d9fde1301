"""Question sets: uploads with row errors, saving by content hash, the sample and control sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import EvaluationError
from core.evaluation import questions as qs
from core.evaluation.questions import EvalQuestion
from core.tables import RowIssue


def jsonl(*rows: object) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows).encode()


GOOD = {"question": "How long is parental leave?", "answer": "20 weeks", "source": "handbook.pdf", "page": 5}


@pytest.mark.parametrize(
    ("filename", "data", "issue"),
    [
        ("s.jsonl", jsonl(GOOD, {"answer": "x"}), RowIssue(2, "question", "is missing")),
        ("s.jsonl", jsonl(GOOD, {"question": "q?", "answer": "  "}), RowIssue(2, "answer", "is empty")),
        ("s.jsonl", jsonl(GOOD, {"question": "q?", "answer": 42}), RowIssue(2, "answer", "must be text, not int")),
        ("s.jsonl", jsonl(GOOD, {"question": "q?", "answer": "a", "page": 0}),
         RowIssue(2, "page", "must be a page number (1 or more), not 0")),
        ("s.jsonl", jsonl(GOOD, {"question": "q?", "answer": "a", "page": "two"}),
         RowIssue(2, "page", "must be a page number (1 or more), not 'two'")),
        ("s.jsonl", jsonl(GOOD, "{oops"),
         RowIssue(2, "", "is not valid JSON (Expecting property name enclosed in double quotes at column 2)")),
        ("s.jsonl", jsonl(GOOD, "[1]"), RowIssue(2, "", "must be a JSON object")),
        ("s.jsonl", jsonl(GOOD, GOOD | {"question": " how long is PARENTAL leave? "}),
         RowIssue(2, "question", "repeats the question of row 1")),
        ("s.jsonl", jsonl(GOOD | {"id": "a"}, {"id": "a", "question": "q?", "answer": "x"}),
         RowIssue(2, "id", "'a' is already the id of row 1")),
        ("s.csv", b"question,answer,source,page\nq1?,a1,h.pdf,3\nq2?,,h.pdf,\n", RowIssue(3, "answer", "is empty")),
        ("s.csv", b"question,answer,page\nq1?,a1,3\nq2?,a2,x\n",
         RowIssue(3, "page", "must be a page number (1 or more), not 'x'")),
    ],
)  # fmt: skip
def test_bad_rows_are_named_and_the_good_ones_kept(filename: str, data: bytes, issue: RowIssue) -> None:
    parsed = qs.parse_upload(filename, data)
    assert parsed.issues == [issue]
    assert len(parsed.questions) == parsed.rows - 1


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("s.txt", b"question,answer\n", "upload a .jsonl or .csv"),
        ("s.csv", b"", "is empty"),
        ("s.csv", b"q,a\nx,y\n", "no 'question' or 'answer' column"),
        ("s.jsonl", b'{"question": "caf\xe9"}', "not UTF-8 text (bad byte at line 1)"),
    ],
)
def test_unusable_files_are_refused_whole(filename: str, data: bytes, message: str) -> None:
    with pytest.raises(EvaluationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        qs.parse_upload(filename, data)


def test_csv_with_optional_columns_and_chinese_rows(data_dir: Path) -> None:
    data = "Question,Answer,Source,Page,Tag\n产假多长？,20周,手册.pdf,5,hr\nWho?,Ilse,,,\n".encode()
    parsed = qs.parse_upload("set.csv", data)
    assert parsed.issues == []
    first, second = parsed.questions
    expected = ("产假多长？", "20周", "手册.pdf", 5, "hr")
    assert (first.question, first.answer, first.source, first.page, first.tag) == expected
    assert (second.source, second.page, second.tag) == (None, None, None)
    assert first.id == qs.question_id(" 产假多长？ ")  # stable across whitespace


def test_saved_sets_are_listed_and_versioned_by_content(data_dir: Path) -> None:
    q = [EvalQuestion("a", "Q1?", "A1", "h.pdf", 2), EvalQuestion("b", "Q2?", "A2")]
    saved = qs.save_set(data_dir, "mine", q)
    assert [(s.name, s.version, len(s.questions)) for s in qs.list_sets(data_dir)] == [("mine", saved.version, 2)]
    assert qs.load_set(data_dir, "mine").questions == tuple(q)
    changed = qs.save_set(data_dir, "mine", [q[0], EvalQuestion("b", "Q2?", "A2 changed")])
    assert changed.version != saved.version
    with pytest.raises(EvaluationError, match="not a valid set name"):
        qs.save_set(data_dir, "../x", q)
    with pytest.raises(EvaluationError, match="empty"):
        qs.save_set(data_dir, "none", [])


def test_a_bad_upload_changes_nothing_stored(data_dir: Path) -> None:
    qs.save_set(data_dir, "mine", [EvalQuestion("a", "Q1?", "A1")])
    before = qs.list_sets(data_dir)
    with pytest.raises(EvaluationError):
        qs.parse_upload("mine.csv", b"nope\n1\n")
    parsed = qs.parse_upload("mine.jsonl", jsonl({"question": "x"}))
    assert parsed.questions == [] and parsed.issues
    assert qs.list_sets(data_dir) == before


def test_builtin_sets() -> None:
    sample = qs.sample_set()
    assert len(sample.questions) == 40 and all(q.source and q.page for q in sample.questions)
    chinese = qs.sample_set("qingwu")
    assert chinese.name == "sample-qingwu" and len(chinese.questions) >= 30 and chinese.questions[0].source
    control = qs.control_set()
    assert len(control.questions) >= 30 and {q.tag for q in control.questions} == {"control"}
