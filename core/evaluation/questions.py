"""Question sets: uploads (CSV or JSONL) checked row by row, saved under DATA_DIR/question_sets/.

A row has `question` and `answer` (the expected answer), and optionally `source` (the document's
file name), `page`, `tag` and `id`. A set's version is the hash of its content; runs keep the
version they were asked on, and a run is compared only with runs of the same version.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.errors import EvaluationError
from core.files import atomic_write_text
from core.samples import SAMPLE_KB_NAME, SAMPLES, SAMPLES_DIR
from core.tables import TABLE_SUFFIXES, RowIssue, csv_rows, decode, jsonl_objects, text_key

CONTROL_FILE = SAMPLES_DIR / "control_questions.jsonl"
SAMPLE_SET = "sample"
CONTROL_SET = "control"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_FIELDS = ("id", "question", "answer", "source", "page", "tag")


@dataclass(frozen=True)
class EvalQuestion:
    """One question with its expected answer and, when known, where the answer is written."""

    id: str
    question: str
    answer: str
    source: str | None = None
    page: int | None = None
    tag: str | None = None


@dataclass(frozen=True)
class QuestionSet:
    name: str
    questions: tuple[EvalQuestion, ...]

    @property
    def version(self) -> str:
        return content_hash(self.questions)


@dataclass
class ParsedSet:
    """The questions that passed, and the issues of the rows that did not."""

    questions: list[EvalQuestion]
    issues: list[RowIssue]
    rows: int


def content_hash(questions: Iterable[EvalQuestion]) -> str:
    canonical = json.dumps([list(asdict(q).values()) for q in questions], ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def question_id(question: str) -> str:
    """A stable id for a row without one: the same question keeps its id across edits of the set."""
    return "q-" + hashlib.sha256(text_key(question).encode("utf-8")).hexdigest()[:10]


def _text(row: dict[str, Any], field: str, number: int, issues: list[RowIssue], *, required: bool) -> str | None:
    raw = row.get(field)
    if raw is None or (isinstance(raw, str) and not raw.strip() and not required):
        if required:
            issues.append(RowIssue(number, field, "is missing"))
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool) and field in ("id", "tag"):
        raw = str(raw)
    if not isinstance(raw, str):
        issues.append(RowIssue(number, field, f"must be text, not {type(raw).__name__}"))
        return None
    if not raw.strip():
        issues.append(RowIssue(number, field, "is empty"))
        return None
    return raw.strip()


def _page(raw: Any, number: int, issues: list[RowIssue]) -> int | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        issues.append(RowIssue(number, "page", f"must be a page number (1 or more), not {raw!r}"))
        return None
    return raw


def _row(row: dict[str, Any], number: int, issues: list[RowIssue]) -> EvalQuestion | None:
    before = len(issues)
    question = _text(row, "question", number, issues, required=True)
    answer = _text(row, "answer", number, issues, required=True)
    source = _text(row, "source", number, issues, required=False)
    tag = _text(row, "tag", number, issues, required=False)
    given_id = _text(row, "id", number, issues, required=False)
    page = _page(row.get("page"), number, issues)
    if len(issues) > before or not question or not answer:
        return None
    return EvalQuestion(given_id or question_id(question), question, answer, source, page, tag)


def parse_upload(filename: str, data: bytes) -> ParsedSet:
    """Questions from a JSONL or CSV file; each bad row is named in `issues` (row = the file's line).

    Raises:
        EvaluationError: the whole file is unusable (type, encoding, CSV header).
    """
    suffix = Path(filename).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise EvaluationError(f"{filename}: upload a .jsonl or .csv file with question and answer columns.")
    text = decode(filename, data, EvaluationError)
    issues: list[RowIssue] = []
    numbered: list[tuple[int, EvalQuestion]] = []
    rows = 0
    if suffix == ".jsonl":
        objects, rows = jsonl_objects(text, issues)
        for number, obj in objects:
            if (q := _row(obj, number, issues)) is not None:
                numbered.append((number, q))
    else:
        for number, row in csv_rows(text, _FIELDS, EvaluationError):
            rows += 1
            if (q := _row(row, number, issues)) is not None:
                numbered.append((number, q))
    return ParsedSet(_drop_duplicates(numbered, issues), issues, rows)


def _drop_duplicates(numbered: list[tuple[int, EvalQuestion]], issues: list[RowIssue]) -> list[EvalQuestion]:
    by_question: dict[str, int] = {}
    by_id: dict[str, int] = {}
    kept = []
    for number, q in numbered:
        if (first := by_question.get(text_key(q.question))) is not None:
            issues.append(RowIssue(number, "question", f"repeats the question of row {first}"))
            continue
        if (first := by_id.get(q.id)) is not None:
            issues.append(RowIssue(number, "id", f"{q.id!r} is already the id of row {first}"))
            continue
        by_question[text_key(q.question)] = by_id[q.id] = number
        kept.append(q)
    return kept


def _root(data_dir: Path) -> Path:
    return data_dir / "question_sets"


def set_path(data_dir: Path, name: str) -> Path:
    if not _NAME.match(name or ""):
        raise EvaluationError(f"{name!r} is not a valid set name; use letters, digits, '-' or '_' (up to 64).")
    return _root(data_dir) / f"{name}.jsonl"


def _write(path: Path, questions: Sequence[EvalQuestion]) -> None:
    rows = [{k: v for k, v in asdict(q).items() if v is not None} for q in questions]
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def save_set(data_dir: Path, name: str, questions: Sequence[EvalQuestion]) -> QuestionSet:
    """Write the set atomically (a new version replaces the old one; runs keep the questions they asked)."""
    if not questions:
        raise EvaluationError("The question set is empty; it needs at least one question with an answer.")
    _write(set_path(data_dir, name), questions)
    return QuestionSet(name, tuple(questions))


def _read(path: Path, name: str) -> QuestionSet:
    parsed = parse_upload(path.name, path.read_bytes())
    if parsed.issues:
        first = parsed.issues[0]
        raise EvaluationError(
            f"The saved set {name} has a bad row {first.row} ({first.field} {first.message}); fix or upload it again."
        )
    return QuestionSet(name, tuple(parsed.questions))


def load_set(data_dir: Path, name: str) -> QuestionSet:
    path = set_path(data_dir, name)
    if not path.is_file():
        raise EvaluationError(f"There is no question set {name!r}; upload it or load the sample set.")
    return _read(path, name)


def list_sets(data_dir: Path) -> list[QuestionSet]:
    """Saved sets by name; unreadable files are skipped (the page lists what it can use)."""
    found = []
    for path in sorted(_root(data_dir).glob("*.jsonl")) if _root(data_dir).is_dir() else []:
        try:
            found.append(_read(path, path.stem))
        except EvaluationError:
            continue
    return found


def sample_set(kb_name: str = SAMPLE_KB_NAME) -> QuestionSet:
    """A sample knowledge base's questions (the English one by default), with source documents and pages."""
    sample = SAMPLES[kb_name]
    name = SAMPLE_SET if kb_name == SAMPLE_KB_NAME else f"{SAMPLE_SET}-{kb_name}"
    return QuestionSet(
        name, tuple(EvalQuestion(q.id, q.question, q.answer, q.source, q.page) for q in sample.questions())
    )


def control_set() -> QuestionSet:
    """General-knowledge questions for measuring forgetting (filter them to what the base model knows)."""
    return _read(CONTROL_FILE, CONTROL_SET)
