"""Fine-tuning datasets as JSONL under DATA_DIR/datasets/<name>.jsonl."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import AppError
from core.files import now_iso

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class DatasetError(AppError):
    """A dataset name or row is not acceptable."""


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


def add_correction(root: Path, name: str, correction: Correction) -> Path:
    """Append one corrected pair (an append of one line is atomic enough for JSONL)."""
    if not correction.question.strip() or not correction.answer.strip():
        raise DatasetError("A correction needs both the question and the corrected answer.")
    path = dataset_path(root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = asdict(correction) | {"added": correction.added or now_iso()}
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_dataset(root: Path, name: str) -> list[dict[str, str]]:
    path = dataset_path(root, name)
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
