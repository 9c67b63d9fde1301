"""The Start page: what the app is for and the next step for the data at hand."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.config import Settings
from core.embeddings import EmbeddingModel
from core.store import Store
from tests.helpers import open_app

pytestmark = pytest.mark.slow


def start() -> AppTest:
    return open_app()


def test_first_visit_names_the_four_strategies_and_sends_a_newcomer_to_documents() -> None:
    at = start()
    text = " ".join(m.value for m in at.markdown)
    for strategy in ("Prompt engineering", "RAG", "Fine-tuning", "Fine-tuning + RAG"):
        assert strategy in text
    assert "You have no knowledge base yet" in at.info[0].value
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert "Qdrant local mode" in sidebar and "all-MiniLM-L6-v2 (384 dims" in sidebar
    assert "0 knowledge bases" in sidebar


def test_with_documents_the_next_step_is_compare_and_fine_tune(minilm: EmbeddingModel) -> None:
    with Store.open(Settings.from_env(), minilm) as store:
        store.create_kb("piers", chunk_size=800, chunk_overlap=120)
    at = start()
    assert "Ask a question in **Compare**" in at.info[0].value
    assert "no knowledge base" not in " ".join(i.value for i in at.info)


def path_marks(at: AppTest) -> list[str]:
    return [p.proto.label for p in at.get("page_link") if p.proto.label[:1] in "✅➡⬜"]


def test_the_path_marks_what_is_done_and_points_at_the_first_open_step(minilm: EmbeddingModel) -> None:
    from core.records import Records

    marks = path_marks(start())
    assert [m.split()[0] for m in marks] == ["➡️", "⬜", "⬜", "⬜"], marks  # nothing done: start with documents
    from ui import resources  # the app's own store: local mode lets one client hold the folder

    resources.store().create_kb("piers", chunk_size=800, chunk_overlap=120)
    Records(Settings.from_env().data_dir / "records.sqlite").add_answer(
        {
            "created": "2026-11-24T10:00:00+00:00",
            "question": "Who runs the pier?",
            "strategy": "RAG",
            "model": "m",
            "template": "t",
            "template_version": 1,
            "answer": "Ann.",
            "error": None,
            "ttft_s": 0.1,
            "total_s": 0.2,
            "prompt_tokens": 5,
            "completion_tokens": 2,
            "detail": {},
        }  # fmt: skip
    )
    marks = path_marks(start())
    assert [m[:1] for m in marks[:2]] == ["✅", "✅"] and "1 question(s) asked" in marks[1], marks
    assert marks[2].startswith("➡️ 3 · Fine-tune") and marks[3].startswith("⬜"), marks
