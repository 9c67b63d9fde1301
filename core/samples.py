"""The bundled fictional knowledge base and its question set."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.ingest import Upload

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
KNOWLEDGE_BASE_DIR = SAMPLES_DIR / "knowledge_base"
QUESTIONS_FILE = SAMPLES_DIR / "questions.jsonl"
SAMPLE_KB_NAME = "brackenridge"


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answer: str
    source: str
    page: int


def sample_uploads() -> list[Upload]:
    """The sample documents as uploads, in a stable order."""
    return [Upload(p.name, p.read_bytes()) for p in sorted(KNOWLEDGE_BASE_DIR.iterdir()) if p.is_file()]


def load_questions(path: Path = QUESTIONS_FILE) -> list[Question]:
    """Read a JSONL question set (id, question, answer, source, page)."""
    with path.open(encoding="utf-8") as f:
        return [Question(**json.loads(line)) for line in f if line.strip()]
