"""The bundled fictional knowledge bases (English, Chinese, and two English ones held out) and their question sets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.embeddings import BUNDLED_MODEL, MULTILINGUAL_MODEL
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


@dataclass(frozen=True)
class Sample:
    """A sample knowledge base: its documents, question set, and the settings it is loaded with."""

    kb_name: str
    language: str
    folder: Path
    questions_file: Path
    embedding_model: str
    analyser: str

    def uploads(self) -> list[Upload]:
        """The documents as uploads, in a stable order."""
        return [Upload(p.name, p.read_bytes()) for p in sorted(self.folder.iterdir()) if p.is_file()]

    def questions(self) -> list[Question]:
        return load_questions(self.questions_file)


ENGLISH = Sample(SAMPLE_KB_NAME, "English", KNOWLEDGE_BASE_DIR, QUESTIONS_FILE, BUNDLED_MODEL, "english")
# A fictional water-purifier maker, Qingwu (青梧科技): handbook, product manual, support policy and FAQ.
# Multilingual E5 by measurement (bench/retrieval.py): MiniLM is an English model.
CHINESE = Sample(
    "qingwu",
    "中文",
    SAMPLES_DIR / "zh" / "knowledge_base",
    SAMPLES_DIR / "zh" / "questions.jsonl",
    MULTILINGUAL_MODEL,
    "chinese",
)
# A fictional makerspace, Corvane: member manual (five pages, form feeds) and laser-room rules. Held out:
# no default (template, top-k, chunking) is chosen on it; it only reports how well they carry over.
HOLDOUT = Sample(
    "corvane",
    "English, held out",
    SAMPLES_DIR / "holdout" / "knowledge_base",
    SAMPLES_DIR / "holdout" / "questions.jsonl",
    BUNDLED_MODEL,
    "english",
)
# A fictional home-battery maker, Vellacourt: the Hearthcell HC-10 user manual, a seven-page PDF (one section a
# page, built by samples/build_pdf.py). Held out like Corvane, and the only held-out set read from a PDF.
HOLDOUT_PDF = Sample(
    "vellacourt",
    "English, held out (PDF)",
    SAMPLES_DIR / "holdout_pdf" / "knowledge_base",
    SAMPLES_DIR / "holdout_pdf" / "questions.jsonl",
    BUNDLED_MODEL,
    "english",
)
HOLDOUTS = (HOLDOUT, HOLDOUT_PDF)
SAMPLES = {s.kb_name: s for s in (ENGLISH, CHINESE, *HOLDOUTS)}


def sample_uploads() -> list[Upload]:
    """The English sample documents as uploads, in a stable order."""
    return ENGLISH.uploads()


def load_questions(path: Path = QUESTIONS_FILE) -> list[Question]:
    """Read a JSONL question set (id, question, answer, source, page)."""
    with path.open(encoding="utf-8") as f:
        return [Question(**json.loads(line)) for line in f if line.strip()]
