"""Training the retriever on pseudo-labels, re-embedding a knowledge base with it, and the scores before/after."""

from __future__ import annotations

import threading

import pytest

from core import embedding_tuner as tuner
from core.config import Settings
from core.embeddings import EmbeddingCatalog, EmbeddingModel, tuned_names
from core.errors import EmbeddingError, TrainingCancelled
from core.ingest import Upload, ingest
from core.kb_transfer import copy_kb
from core.samples import Question
from core.store import SearchHit, Store

HANDBOOK = b"""# Harbour rules

## Gates
The north gate opens at 06:00 and closes at 22:00. Gate code 4471 is changed every March.

## Boats
Every boat over 12 metres needs a berth permit. The harbour master is Ilse Marrow.

## Fuel
The fuel dock sells diesel only. Payment is by card at the kiosk.
"""


def hit(filename: str, page: int) -> SearchHit:
    return SearchHit("", 1.0, "d", filename, page, 0, None)


def test_hits_and_mrr_follow_the_rank_of_the_expected_page() -> None:
    ranked = {
        "a": [hit("x.md", 1), hit("y.md", 1)],  # rank 1
        "b": [hit("x.md", 2), hit("y.md", 3), hit("y.md", 1)],  # rank 3
        "c": [hit("x.md", 9)],  # missed
        "d": [hit("y.md", 1), hit("y.md", 1)],  # rank 1, counted once
    }
    questions = [Question(q, q, "", "y.md" if q != "a" else "x.md", 1) for q in "abcd"]
    scores = tuner.evaluate(lambda q: ranked[q], questions, ks=(1, 3))
    assert scores.hits == {1: 0.5, 3: 0.75} and scores.questions == 4
    assert scores.mrr == pytest.approx((1 + 1 / 3 + 0 + 1) / 4)


@pytest.mark.slow
def test_tuned_retriever_is_saved_listed_and_re_embeds_a_knowledge_base(
    settings: Settings, minilm: EmbeddingModel
) -> None:
    catalog = EmbeddingCatalog(data_dir=settings.data_dir, preloaded=[minilm])
    with Store.open(settings, minilm, catalog) as store:
        store.create_kb("base", chunk_size=120, chunk_overlap=0)
        ingest(store, "base", [Upload("harbour.md", HANDBOOK)])
        pairs = tuner.pseudo_labels(store, "base")
        [doc] = store.list_documents("base")
        chunks = {h.text for h in store.chunks_of("base", doc.doc_id)}
        assert pairs and all(p.chunk in chunks for p in pairs)  # each question paired with its own chunk
        assert any("harbour" in p.question for p in pairs)  # questions name their source
        name = tuner.train(settings.data_dir, "harbour", pairs[:8], batch_size=4)
        assert name == "tuned:harbour" and tuned_names(settings.data_dir) == [name]
        with pytest.raises(EmbeddingError, match="exists already"):
            tuner.train(settings.data_dir, "harbour", pairs[:8])
        kb = copy_kb(store, "base", "tuned", embedding_model=name)
        assert (kb.embedding_model, kb.analyser) == (name, "english")
        assert store.count_chunks("tuned") == store.count_chunks("base")
        assert [d.doc_id for d in store.list_documents("tuned")] == [d.doc_id for d in store.list_documents("base")]
        [top] = store.search("tuned", "When does the north gate open?", k=1, mode="dense")
        assert "06:00" in top.text
    # A fresh process finds the tuned model by the name the knowledge base records.
    with Store.open(settings, minilm, EmbeddingCatalog(data_dir=settings.data_dir)) as store:
        assert "06:00" in store.search("tuned", "When does the north gate open?", k=1)[0].text


@pytest.mark.slow
def test_stopping_a_tuning_run_leaves_nothing_behind(settings: Settings, minilm: EmbeddingModel) -> None:
    catalog = EmbeddingCatalog(data_dir=settings.data_dir, preloaded=[minilm])
    questions = [Question("q1", "When does the north gate open?", "06:00", "harbour.md", 1)]
    with Store.open(settings, minilm, catalog) as store:
        store.create_kb("base", chunk_size=120, chunk_overlap=0)
        ingest(store, "base", [Upload("harbour.md", HANDBOOK)])
        pairs = tuner.pseudo_labels(store, "base")
        stop = threading.Event()
        seen: list[str] = []

        def progress(done: int, total: int, message: str) -> None:
            seen.append(message)
            if "training step" in message:
                stop.set()  # as the Stop button would, during round 1's training

        with pytest.raises(TrainingCancelled):
            tuner.tune(
                store, settings.data_dir, "base", "gate", pairs, questions, rounds=2, pairs_per_round=4,
                batch_size=2, progress=progress, cancel=stop,
            )  # fmt: skip
        assert any(m.startswith("Round 1: training step 1/") for m in seen)
        assert [kb.name for kb in store.list_kbs()] == ["base"] and tuned_names(settings.data_dir) == []
        assert not list((settings.data_dir / "embeddings").iterdir())  # no staging folder either
        with pytest.raises(EmbeddingError, match="only all-MiniLM-L6-v2"):
            store.create_kb("e5", chunk_size=120, chunk_overlap=0, embedding_model="multilingual-e5-small")
            tuner.tune(store, settings.data_dir, "e5", "e5t", pairs, questions)
