"""Keyword analysers, hybrid search in Qdrant local mode, dense-only knowledge bases from before, reading order."""

from __future__ import annotations

import random

import pytest
from qdrant_client import models

from core import sparse
from core.config import Settings
from core.documents import Chunk, parse, split
from core.embeddings import MULTILINGUAL_MODEL, EmbeddingCatalog, EmbeddingModel
from core.errors import KnowledgeBaseError
from core.ingest import Upload, ingest
from core.samples import CHINESE
from core.store import DocumentRecord, Store


@pytest.mark.parametrize(
    ("text", "analyser", "expected"),
    [
        ("What extension reaches the on-call engineer?", "english", ["extension", "reaches", "call", "engineer"]),
        ("Firmware 3.2.0 ships at 10:00, not 9.", "english", ["firmware", "3.2.0", "ships", "10:00", "9"]),
        ("E4 fault: TDS sensor", "english", ["e4", "fault", "tds", "sensor"]),
        ("五吉赫兹", "english", ["五吉", "吉赫", "赫兹"]),  # no dictionary: character pairs
        ("售后热线的电话号码是多少？", "chinese", ["售后", "热线", "电话", "号码", "电话号码"]),
        ("改用 Wi-Fi 2.4", "chinese", ["改用", "wi", "fi", "2.4"]),
    ],
)
def test_analysers_find_words_numbers_and_chinese_terms(text: str, analyser: str, expected: list[str]) -> None:
    assert sparse.terms(text, analyser) == expected


def test_chunk_weights_saturate_and_queries_weigh_each_term_once() -> None:
    doc = sparse.document_vector("filter filter filter cartridge", "english")
    weights = dict(zip(doc.indices, doc.values, strict=True))
    filt, cart = (weights[sparse.document_vector(w, "english").indices[0]] for w in ("filter", "cartridge"))
    assert filt > cart and filt < 3 * cart  # more mentions count, with diminishing returns (BM25)
    query = sparse.query_vector("filter the filter", "english")
    assert query.values == [1.0] and doc.indices == sorted(doc.indices)


def keyword_chunks(n: int) -> tuple[list[Chunk], list[list[float]]]:
    """Chunks whose dense vectors are all alike, so only keywords tell them apart."""
    doc_id = "ab" * 16
    texts = [f"Part {i}: valve code QX-{i:04d} is serviced by team {i % 7}." for i in range(n)]
    chunks = [Chunk(doc_id, "parts.txt", 1, i, t, 0, len(t)) for i, t in enumerate(texts)]
    return chunks, [[1.0] + [0.0] * 383 for _ in chunks]


def test_keyword_and_hybrid_search_find_an_exact_code_that_dense_cannot(store: Store, kb: str) -> None:
    chunks, vectors = keyword_chunks(40)
    store.upsert_chunks(kb, chunks, vectors)
    store.commit(DocumentRecord(kb, chunks[0].doc_id, "parts.txt", "text", 1, 40, 100, "now"))
    for mode in ("sparse", "hybrid"):
        top = store.search(kb, "Who services valve QX-0031?", k=3, mode=mode)
        assert top[0].chunk_index == 31, mode
    assert store.get_kb(kb).mode_for(None) == "hybrid"  # the default, by measurement


@pytest.mark.parametrize("mode", ["sparse", "hybrid"])
def test_in_process_keyword_scoring_ranks_and_scores_as_qdrant_does(store: Store, kb: str, mode: str) -> None:
    """Local mode scores keywords in a numpy index; Qdrant's own Query API must agree with it."""
    rng = random.Random(3)
    words = [f"w{i}" for i in range(150)]
    texts = [" ".join(rng.choices(words, k=rng.randint(5, 40))) for _ in range(300)]
    chunks = [Chunk("cd" * 16, "words.txt", 1, i, t, 0, len(t)) for i, t in enumerate(texts)]
    vectors = [[rng.gauss(0, 1) for _ in range(384)] for _ in chunks]
    store.upsert_chunks(kb, chunks, vectors)
    store.commit(DocumentRecord(kb, chunks[0].doc_id, "words.txt", "text", 1, 300, 100, "now"))
    for query in ("w1 w2 w3", "w42 w42 w7 w100", "w149 w0"):
        store.in_process_keywords = True
        ours = store.search(kb, query, k=8, mode=mode)
        store.in_process_keywords = False
        qdrants = store.search(kb, query, k=8, mode=mode)
        assert [h.score for h in ours] == pytest.approx([h.score for h in qdrants], rel=1e-4), query
        # Chunks with equal scores may come in either order; each one's score must agree.
        theirs = {h.chunk_index: h.score for h in qdrants}
        assert all(theirs.get(h.chunk_index, h.score) == pytest.approx(h.score, rel=1e-4) for h in ours)
        assert ours[0].chunk_index == qdrants[0].chunk_index


def test_unfinished_chunks_stay_invisible_in_every_mode(store: Store, kb: str) -> None:
    chunks, vectors = keyword_chunks(5)
    store.upsert_chunks(kb, chunks, vectors)  # never committed
    for mode in ("dense", "sparse", "hybrid"):
        assert store.search(kb, "valve QX-0003", k=3, mode=mode) == []


def test_knowledge_base_records_analyser_and_mode_and_refuses_bad_ones(store: Store) -> None:
    kb = store.create_kb("zh", chunk_size=800, chunk_overlap=120, analyser="chinese", retrieval_mode="sparse")
    again = store.get_kb("zh")
    assert (again.analyser, again.retrieval_mode, again.modes) == ("chinese", "sparse", ("dense", "sparse", "hybrid"))
    assert again == kb
    with pytest.raises(KnowledgeBaseError, match="Unknown analyser"):
        store.create_kb("x", chunk_size=800, chunk_overlap=120, analyser="klingon")
    with pytest.raises(KnowledgeBaseError, match="needs a keyword index"):
        store.create_kb("y", chunk_size=800, chunk_overlap=120, analyser=None, retrieval_mode="hybrid")


def test_dense_only_knowledge_base_from_before_keeps_working_and_says_how_to_add_keywords(
    store: Store, minilm: EmbeddingModel
) -> None:
    """A collection as the app made it before hybrid search: unnamed vector, no analyser in its metadata."""
    meta = {"embedding_model": minilm.name, "dimension": 384, "chunk_size": 800, "chunk_overlap": 120, "created": "x"}
    store.client.create_collection(
        "legacy",
        vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE),
        metadata={"ragtune": meta},
    )
    kb = store.get_kb("legacy")
    assert kb.analyser is None and kb.modes == ("dense",)
    assert kb.upgrade_hint is not None and "upload the documents again" in kb.upgrade_hint
    [report] = ingest(store, "legacy", [Upload("keeper.txt", b"The lighthouse keeper is named Orla Finch.")])
    assert report.status == "added"
    for mode in (None, "dense", "hybrid", "sparse"):  # modes it lacks fall back to dense
        [hit] = store.search("legacy", "Who keeps the lighthouse?", k=1, mode=mode)
        assert "Orla Finch" in hit.text and 0 < hit.score <= 1


def test_chunks_of_reads_a_large_document_whole_and_in_reading_order(store: Store, kb: str) -> None:
    chunks, vectors = keyword_chunks(300)  # more than one window of 256
    store.upsert_chunks(kb, list(reversed(chunks)), list(reversed(vectors)))
    got = store.chunks_of(kb, chunks[0].doc_id)
    assert [h.chunk_index for h in got] == list(range(300))
    assert [h.chunk_index for h in store.chunks_of(kb, chunks[0].doc_id, start=250, limit=10)] == list(range(250, 260))


def test_search_does_not_build_a_langchain_store_per_query(
    store: Store, kb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_qdrant import QdrantVectorStore

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("search built a QdrantVectorStore")

    monkeypatch.setattr(QdrantVectorStore, "__init__", refuse)
    [report] = ingest(store, kb, [Upload("keeper.txt", b"The lighthouse keeper is named Orla Finch.")])
    assert store.search(kb, "lighthouse keeper", k=1)[0].doc_id == report.doc_id


def test_chinese_text_splits_at_sentence_ends_and_weighs_cjk_characters() -> None:
    sentence = "售后热线的服务时间为每天早上八点至晚上十点。"  # 22 characters, weighing 64
    text = "".join(sentence.replace("八", str(i % 10)) for i in range(30))
    doc = parse(text.encode(), "zh.txt")
    chunks = split(doc, chunk_size=200, chunk_overlap=0)
    assert len(chunks) > 1
    assert all(c.text.endswith("。") for c in chunks)
    assert all(len(c.text) <= 200 // 3 + 1 for c in chunks)  # a CJK character counts three
    assert "".join(c.text for c in chunks) == text


def test_chinese_sample_answers_are_on_their_pages_and_chunks_end_at_sentence_ends(settings: Settings) -> None:
    pages = {(u.filename, p.number): p.text for u in CHINESE.uploads() for p in parse(u.data, u.filename).pages}
    questions = CHINESE.questions()
    assert len(questions) >= 20 and len({q.id for q in questions}) == len(questions)
    for q in questions:
        page = pages[(q.source, q.page)]
        words = sparse.terms(q.answer, "chinese")
        found = [w for w in words if w in page.lower()]
        assert len(found) >= 0.6 * len(words), f"{q.id}: only {found} of {words} on {q.source} page {q.page}"
    for u in CHINESE.uploads():
        doc = parse(u.data, u.filename)
        for c in split(doc, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap):
            after = doc.pages[c.page - 1].text[c.end : c.end + 1]
            assert c.text.rstrip()[-1] in "。！？" or after in ("", "\n"), f"{u.filename}: cut mid-sentence: {c.text}"


@pytest.mark.slow
def test_chinese_sample_is_found_by_multilingual_hybrid_search(settings: Settings, minilm: EmbeddingModel) -> None:
    """The Chinese sample with the model and analyser it loads with: hit@3 measured 100% (30/30)."""
    with Store.open(settings, minilm, EmbeddingCatalog(preloaded=[minilm])) as store:
        store.create_kb(
            "qingwu",
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
            embedding_model=CHINESE.embedding_model,
            analyser=CHINESE.analyser,
        )
        assert store.get_kb("qingwu").embedding_model == MULTILINGUAL_MODEL
        assert all(r.status == "added" for r in ingest(store, "qingwu", CHINESE.uploads()))
        questions = CHINESE.questions()
        hits = 0
        for q in questions:
            found = [(h.filename, h.page) for h in store.search("qingwu", q.question, k=3)]
            hits += (q.source, q.page) in found
        assert hits / len(questions) >= 0.9
