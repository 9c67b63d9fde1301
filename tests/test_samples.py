from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.config import Settings
from core.documents import parse, split
from core.embeddings import EmbeddingModel
from core.ingest import ingest
from core.samples import KNOWLEDGE_BASE_DIR, load_questions, sample_uploads
from core.store import Store


def page_texts() -> dict[tuple[str, int], str]:
    texts = {}
    for upload in sample_uploads():
        for page in parse(upload.data, upload.filename).pages:
            texts[(upload.filename, page.number)] = " ".join(page.text.split())
    return texts


STOPWORDS = {"the", "and", "for", "per", "from", "with", "after", "that", "are", "its", "all", "each", "than"}


def content_words(answer: str) -> list[str]:
    words = (w.strip(".,;:()").lower() for w in answer.split())
    return [w for w in words if len(w) >= 3 and w not in STOPWORDS]


def test_sample_knowledge_base_has_the_promised_shape() -> None:
    uploads = sample_uploads()
    kinds = [u.filename.rsplit(".", 1)[1] for u in uploads]
    assert kinds.count("pdf") >= 1 and sum(k in ("md", "txt") for k in kinds) >= 2
    pages = sum(len(parse(u.data, u.filename).pages) for u in uploads)
    words = sum(len(parse(u.data, u.filename).pages[0].text.split()) for u in uploads)
    assert pages >= 15 and words > 300


def test_every_question_is_answered_on_its_page() -> None:
    texts = page_texts()
    questions = load_questions()
    assert len(questions) >= 30
    assert len({q.id for q in questions}) == len(questions)
    for q in questions:
        page = texts[(q.source, q.page)]
        numbers = [n.rstrip(".,") for n in re.findall(r"\d[\d,.:]*", q.answer)]
        assert all(n in page for n in numbers), f"{q.id}: {numbers} not all on {q.source} page {q.page}"
        words = content_words(q.answer)
        found = [w for w in words if w in page.lower()]
        assert len(found) >= 0.6 * len(words), f"{q.id}: only {found} of {words} on {q.source} page {q.page}"


def test_committed_pdf_matches_its_source(tmp_path: Path) -> None:
    import samples.build_pdf as build_pdf

    rebuilt = build_pdf.build(target=tmp_path / "handbook.pdf")
    assert rebuilt.read_bytes() == (KNOWLEDGE_BASE_DIR / "employee_handbook.pdf").read_bytes()


@pytest.mark.slow
def test_retrieval_finds_the_expected_page_for_most_questions(store: Store, kb: str, minilm: EmbeddingModel) -> None:
    reports = ingest(store, kb, sample_uploads())
    assert all(r.status == "added" for r in reports)
    questions = load_questions()
    hits_at_5 = 0
    for q in questions:
        found = [(h.filename, h.page) for h in store.search(kb, q.question, k=5)]
        hits_at_5 += (q.source, q.page) in found
    # Measured 39/40 with the default chunking; a chunking or embedding regression drops this.
    assert hits_at_5 / len(questions) >= 0.9


@pytest.mark.slow
def test_default_chunks_fit_the_embedding_window(minilm: EmbeddingModel) -> None:
    """MiniLM silently truncates past 256 word pieces; default chunks must stay inside (measured max 184)."""
    settings = Settings.from_env()
    tokenizer = minilm.embeddings.model.tokenizer  # type: ignore[attr-defined]
    lengths = [
        len(tokenizer(c.text)["input_ids"])
        for u in sample_uploads()
        for c in split(parse(u.data, u.filename), chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    ]
    assert minilm.max_tokens == 256
    assert max(lengths) <= minilm.max_tokens
