"""Fine-tuning datasets: question/answer pairs as JSONL under DATA_DIR/datasets/<name>.jsonl.

Sources: an uploaded JSONL (chat `messages`, or `question`/`answer`) or CSV, pairs generated
from a knowledge base, the sample facts, and the "wrong answer" corrections that Compare
appends. Every row problem is reported with its row number and field; nothing is dropped
without the user choosing to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from core.errors import DatasetError, DatasetExistsError
from core.files import atomic_write_text, data_dir_error, now_iso
from core.tables import TABLE_SUFFIXES, RowIssue, csv_rows, decode, jsonl_objects, text_key

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
LOCK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Pair:
    """One training example: the question, the wanted answer, and an optional system prompt.

    `evidence` is the sentence the answer was drawn from (pairs generated from a knowledge base), shown
    for review; plain training does not learn it (Joint learns it as the answer: `JointSettings.full_sentence`),
    and it does not count in the dataset's version.
    """

    question: str
    answer: str
    system: str | None = None
    evidence: str = ""

    def messages(self, default_system: str | None = None) -> list[dict[str, str]]:
        """As chat messages, formatted later with the base model's own chat template."""
        return self.prompt_messages(default_system) + [{"role": "assistant", "content": self.answer}]

    def prompt_messages(self, default_system: str | None = None) -> list[dict[str, str]]:
        """The messages before the answer: what the model is asked at serving time."""
        return chat_prompt(self.question, self.system if self.system is not None else default_system)

    def completion_messages(self, default_system: str | None = None) -> list[dict[str, str]]:
        """The prompt for a base model without a chat template (put in completion form by the encoder)."""
        return self.prompt_messages(default_system)


def chat_prompt(question: str, system: str | None) -> list[dict[str, str]]:
    """An optional system message, then the question: the prompt the FT strategy sends."""
    head = [{"role": "system", "content": system}] if system else []
    return head + [{"role": "user", "content": question}]


@dataclass
class Parsed:
    """The pairs that passed, and the issues of the rows that did not."""

    pairs: list[Pair]
    issues: list[RowIssue]
    rows: int


@dataclass(frozen=True)
class Correction:
    """A wrong answer and the answer the user wanted: one training pair for the staged loop."""

    question: str
    answer: str
    wrong_answer: str
    strategy: str
    model: str
    added: str = ""


def dataset_path(root: Path, name: str) -> Path:
    if not _NAME.match(name or ""):
        raise DatasetError(f"{name!r} is not a valid dataset name; use letters, digits, '-' or '_' (up to 64).")
    return root / f"{name}.jsonl"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the dataset's file lock: an append and a replace never interleave (across processes too).

    Without it, a correction appended to the old file while a save renames the new one into
    place would be lost with the old file.
    """
    lock = FileLock(path.with_name(f".{path.name}.lock"), timeout=LOCK_TIMEOUT_S)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout as e:
        raise DatasetError(f"Dataset {path.stem!r} is being written by another session; try again.") from e
    except OSError as e:
        raise data_dir_error(path.parent, e) from e
    try:
        yield
    finally:
        lock.release()


def add_correction(root: Path, name: str, correction: Correction) -> Path:
    """Append one corrected pair, under the dataset's lock."""
    if not correction.question.strip() or not correction.answer.strip():
        raise DatasetError("A correction needs both the question and the corrected answer.")
    path = dataset_path(root, name)
    row = asdict(correction) | {"added": correction.added or now_iso()}
    line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    with _locked(path):
        size = path.stat().st_size if path.exists() else 0
        try:
            with path.open("ab") as f:
                f.write(line)
        except OSError as e:
            # A full disk may take part of the line: cut it off, so the file stays valid JSONL.
            with contextlib.suppress(OSError), path.open("r+b") as f:
                f.truncate(size)
            raise data_dir_error(path, e) from e
    return path


def dataset_exists(root: Path, name: str) -> bool:
    """Whether a dataset of this name is saved."""
    return dataset_path(root, name).is_file()


def save_would_replace(root: Path, name: str, pairs: Sequence[Pair]) -> bool:
    """Whether saving these pairs under `name` would replace a saved dataset with other pairs: ask first.

    Saving the very pairs that are saved (a dataset loaded, then trained on unchanged) is no replacement.
    """
    path = dataset_path(root, name)
    return path.is_file() and _saved_hash(path) != content_hash(pairs)


def _saved_hash(path: Path) -> str | None:
    try:
        return content_hash(parse_upload(path.name, path.read_bytes()).pairs)
    except (OSError, DatasetError):
        return None


def read_dataset(root: Path, name: str) -> list[dict[str, str]]:
    path = dataset_path(root, name)
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def list_datasets(root: Path) -> list[str]:
    return sorted(p.stem for p in root.glob("*.jsonl")) if root.is_dir() else []


def load_pairs(root: Path, name: str) -> Parsed:
    """A saved dataset as pairs (corrections included), checked like an upload."""
    path = dataset_path(root, name)
    if not path.is_file():
        raise DatasetError(f"There is no dataset {name!r}; create it on the Fine-tune page.")
    return parse_upload(path.name, path.read_bytes())


def save_pairs(root: Path, name: str, pairs: Sequence[Pair], *, replace: bool = False) -> Path:
    """Write the dataset atomically, under its lock.

    Args:
        replace: the user confirmed replacing a saved dataset of this name that holds other pairs.

    Raises:
        DatasetExistsError: such a dataset exists (corrections appended to it included) and `replace` is off.
    """
    if not pairs:
        raise DatasetError("The dataset is empty; add at least one question/answer pair.")
    path = dataset_path(root, name)
    with _locked(path):
        # Checked under the lock: a correction appended a moment ago makes the saved pairs differ.
        if not replace and path.is_file() and _saved_hash(path) != content_hash(pairs):
            raise DatasetExistsError(
                f"A dataset named {name!r} already exists with other pairs; confirm to replace it, "
                "or pick another name."
            )
        write_pairs(path, pairs)
    return path


def write_pairs(path: Path, pairs: Iterable[Pair]) -> None:
    """Pairs as JSONL (`question`, `answer`, and `system` and `evidence` when set), written atomically."""
    rows = [{k: v for k, v in asdict(p).items() if v is not None and v != ""} for p in pairs]
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def content_hash(pairs: Iterable[Pair]) -> str:
    """The dataset's version: a hash of its pairs in order (field order and whitespace in files do not count)."""
    canonical = json.dumps([[p.system, p.question, p.answer] for p in pairs], ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) else None


def _pair_from_messages(messages: Any, row: int, issues: list[RowIssue]) -> Pair | None:
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        issues.append(RowIssue(row, "messages", "must be a list of {role, content} objects"))
        return None
    roles = [m.get("role") for m in messages]
    system = None
    if roles and roles[0] == "system":
        system = _text(messages[0].get("content"))
        messages, roles = messages[1:], roles[1:]
    if roles != ["user", "assistant"]:
        issues.append(
            RowIssue(
                row,
                "messages",
                f"roles are {roles}; expected an optional system message, then one user and one assistant message",
            )
        )
        return None
    return _pair(
        messages[0].get("content"),
        messages[1].get("content"),
        row,
        issues,
        ("messages[user]", "messages[assistant]"),
        system,
    )


def _pair(
    question: Any,
    answer: Any,
    row: int,
    issues: list[RowIssue],
    fields: tuple[str, str] = ("question", "answer"),
    system: str | None = None,
    evidence: str | None = None,
) -> Pair | None:
    q, a = _text(question), _text(answer)
    ok = True
    for value, raw, field in ((q, question, fields[0]), (a, answer, fields[1])):
        if raw is None:
            issues.append(RowIssue(row, field, "is missing"))
            ok = False
        elif value is None:
            issues.append(RowIssue(row, field, f"must be text, not {type(raw).__name__}"))
            ok = False
        elif not value:
            issues.append(RowIssue(row, field, "is empty"))
            ok = False
    return Pair(q, a, system or None, evidence or "") if ok and q and a else None


def _parse_jsonl(text: str, issues: list[RowIssue]) -> tuple[list[tuple[int, Pair]], int]:
    pairs = []
    objects, rows = jsonl_objects(text, issues)
    for number, obj in objects:
        pair = (
            _pair_from_messages(obj["messages"], number, issues)
            if "messages" in obj
            else _pair(
                obj.get("question"),
                obj.get("answer"),
                number,
                issues,
                system=_text(obj.get("system")),
                evidence=_text(obj.get("evidence")),
            )
        )
        if pair:
            pairs.append((number, pair))
    return pairs, rows


def _parse_csv(text: str, issues: list[RowIssue]) -> tuple[list[tuple[int, Pair]], int]:
    pairs, rows = [], 0
    for number, row in csv_rows(text, ("question", "answer", "system"), DatasetError):
        rows += 1
        pair = _pair(row.get("question"), row.get("answer"), number, issues, system=_text(row.get("system")))
        if pair:
            pairs.append((number, pair))
    return pairs, rows


def parse_upload(filename: str, data: bytes) -> Parsed:
    """Pairs from a JSONL or CSV file; every bad row is named in `issues`, duplicates included.

    Raises:
        DatasetError: the whole file is unusable (type, encoding, CSV header).
    """
    suffix = Path(filename).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DatasetError(f"{filename}: upload a .jsonl or .csv file of question/answer pairs.")
    text = decode(filename, data, DatasetError)
    issues: list[RowIssue] = []
    numbered, rows = (_parse_jsonl if suffix == ".jsonl" else _parse_csv)(text, issues)
    return Parsed(_drop_duplicates(numbered, issues), issues, rows)


def _drop_duplicates(numbered: list[tuple[int, Pair]], issues: list[RowIssue]) -> list[Pair]:
    seen: dict[str, tuple[int, Pair]] = {}
    kept = []
    for number, pair in numbered:
        key = text_key(pair.question)
        if key in seen:
            first, other = seen[key]
            same = text_key(other.answer) == text_key(pair.answer)
            what = "repeats" if same else "asks the same question as"
            extra = "" if same else " with another answer; keep the right one"
            issues.append(RowIssue(number, "question", f"{what} row {first}{extra}"))
            continue
        seen[key] = (number, pair)
        kept.append(pair)
    return kept


def check_lengths(pairs: Sequence[Pair], count_tokens: Callable[[Pair], int], max_length: int) -> list[RowIssue]:
    """Rows whose formatted conversation is longer than the training length (rows are 1-based)."""
    issues = []
    for number, pair in enumerate(pairs, start=1):
        n = count_tokens(pair)
        if n > max_length:
            issues.append(
                RowIssue(
                    number, "answer", f"is {n} tokens with the chat template, over the maximum length {max_length}"
                )
            )
    return issues


def split(pairs: Sequence[Pair], validation_fraction: float) -> tuple[list[Pair], list[Pair]]:
    """Train and validation sets, stable across edits: each pair's side follows from its question's hash.

    Fewer than 5 pairs: no validation set (every pair is needed to learn from).
    """
    if validation_fraction <= 0 or len(pairs) < 5:
        return list(pairs), []

    def bucket(p: Pair) -> float:
        return int(hashlib.sha256(text_key(p.question).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    ranked = sorted(pairs, key=bucket)
    n_val = max(1, round(len(pairs) * validation_fraction))
    held = {id(p) for p in ranked[:n_val]}
    return [p for p in pairs if id(p) not in held], [p for p in pairs if id(p) in held]
