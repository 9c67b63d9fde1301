"""The bundled MiniLM is a SentenceTransformer we wrap, embedding exactly as before (real model)."""

from __future__ import annotations

import pytest
from langchain_huggingface import HuggingFaceEmbeddings
from sentence_transformers import SentenceTransformer

from core.embeddings import EmbeddingModel, SentenceTransformerEmbeddings, _query_worker, bundled_model_path

pytestmark = pytest.mark.slow
TEXTS = ["The pier opens at 06:00.\nDogs are welcome.", "Parental leave is 20 weeks at full pay.", ""]


def test_minilm_is_loaded_as_a_sentence_transformer_and_wrapped(minilm: EmbeddingModel) -> None:
    assert isinstance(minilm.embeddings, SentenceTransformerEmbeddings)
    assert isinstance(minilm.embeddings.model, SentenceTransformer)
    assert (minilm.dimension, minilm.max_tokens) == (384, 256)


def test_vectors_are_the_ones_knowledge_bases_were_built_with(minilm: EmbeddingModel) -> None:
    """Same vectors as langchain-huggingface's wrapper gave, so existing collections stay searchable."""
    before = HuggingFaceEmbeddings(
        model_name=str(bundled_model_path()),
        model_kwargs={"device": "cpu", "local_files_only": True},
        encode_kwargs={"normalize_embeddings": True},
    )
    for old, new in zip(before.embed_documents(TEXTS), minilm.embeddings.embed_documents(TEXTS), strict=True):
        assert new == pytest.approx(old, abs=1e-6)
    assert minilm.embeddings.embed_query(TEXTS[0]) == pytest.approx(before.embed_query(TEXTS[0]), abs=1e-6)


def test_queries_are_embedded_on_one_thread_and_other_threads_keep_the_default(minilm: EmbeddingModel) -> None:
    import threading

    import torch
    from threadpoolctl import threadpool_info

    default = torch.get_num_threads()
    query = minilm.embeddings.embed_query(TEXTS[1])
    assert query == pytest.approx(minilm.embeddings.embed_documents([TEXTS[1]])[0], abs=1e-6)
    worker = _query_worker()
    assert worker.threads == 1 and worker.call(torch.get_num_threads) == 1
    assert {i["num_threads"] for i in worker.call(threadpool_info) if i["user_api"] == "openmp"} == {1}
    seen: list[int] = []
    later = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    later.start()
    later.join()
    assert torch.get_num_threads() == default and seen == [default]  # ingest and training keep theirs
