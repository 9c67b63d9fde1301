"""The parameter sweep with real components: MiniLM, Qdrant local mode, the sample knowledge bases, SmolLM2."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from core import documents
from core.config import Settings
from core.embeddings import EmbeddingModel
from core.engine import EmbeddedEngine
from core.errors import EvaluationError, KnowledgeBaseError
from core.evaluation import report, sweep
from core.evaluation.questions import sample_set
from core.evaluation.runner import load_request, start_run
from core.evaluation.sweep import Chunking, Grid
from core.ingest import ingest
from core.lab.board import JobBoard
from core.lab.evaluation import start_evaluation
from core.models import ModelCatalog
from core.rag_preset import RagPreset, load_rag_preset, reset_rag_preset, save_rag_preset
from core.records import Records
from core.samples import SAMPLES, sample_uploads
from core.store import SearchHit, Store
from core.strategies import RAG_TEMPLATE, RAG_TOP_K, Runtime, presets
from core.template_library import TemplateLibrary
from tests.helpers import real


def bare(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("sample", list(SAMPLES))
@pytest.mark.parametrize("chunking", [Chunking(400, 60), Chunking(800, 120), Chunking(300, 0), Chunking(200, 100)])
def test_pages_rebuilt_from_overlapping_chunks_hold_the_same_text(sample: str, chunking: Chunking) -> None:
    for upload in SAMPLES[sample].uploads():
        doc = documents.parse(upload.data, upload.filename)
        chunks = documents.split(doc, chunk_size=chunking.size, chunk_overlap=chunking.overlap)
        hits = [SearchHit(c.text, 1.0, c.doc_id, c.filename, c.page, c.index, c.heading) for c in chunks]
        rebuilt = {p.number: p.text for p in sweep.page_texts(hits, chunking.overlap)}
        assert rebuilt.keys() == {p.number for p in doc.pages if p.text.strip()}
        for page in doc.pages:
            if page.text.strip():
                assert bare(rebuilt[page.number]) == bare(page.text), (upload.filename, page.number)


def test_merge_joins_on_the_longest_shared_text_only() -> None:
    assert sweep.merge_chunks(["The warranty lasts two years.", "two years. Extended cover costs 49 euros."]) == (
        "The warranty lasts two years. Extended cover costs 49 euros."
    )
    assert sweep.merge_chunks(["It was a", "a short one."]) == "It was a a short one."  # 1 character: chance
    assert sweep.merge_chunks(["First sentence.", "Second one."]) == "First sentence.\n\nSecond one."
    assert sweep.merge_chunks(["青梧科技。", "公司简介"]) == "青梧科技。公司简介"
    assert sweep.merge_chunks(["## Setup", "Plug it in."]) == "## Setup\n\nPlug it in."


def test_scratch_names_encode_the_chunking_and_stay_valid() -> None:
    name = sweep.scratch_name("brackenridge", Chunking(800, 120))
    assert name == "sweep--800-120--brackenridge"
    assert sweep.parse_scratch(name) == Chunking(800, 120)
    long = sweep.scratch_name("k" * 48, Chunking(1200, 180))
    assert len(long) <= 48 and sweep.parse_scratch(long) == Chunking(1200, 180)
    assert long != sweep.scratch_name("k" * 47 + "j", Chunking(1200, 180))
    assert sweep.parse_scratch("brackenridge") is None


def test_grid_cells_names_and_bad_grids() -> None:
    grid = Grid("kb", (Chunking(400, 60), Chunking(800, 120)), (1, 2), (None, 0.3), ("A", "B"))
    assert len(grid.cells) == 16 and len({c.name for c in grid.cells}) == 16
    assert grid.cells[0].name == "400/60 · top-1 · no threshold · A"
    with pytest.raises(EvaluationError, match="overlap smaller"):
        replace(grid, chunkings=(Chunking(100, 100),)).check()
    with pytest.raises(EvaluationError, match="at least one"):
        replace(grid, top_ks=()).check()


@pytest.fixture
def sample_store(settings: Settings, minilm: EmbeddingModel) -> Iterator[Store]:
    store = Store.open(settings, minilm)
    store.create_kb("brackenridge", chunk_size=800, chunk_overlap=120)
    ingest(store, "brackenridge", sample_uploads())
    yield store
    store.close()


def test_scratch_knowledge_bases_are_rechunked_hidden_reused_and_deleted(sample_store: Store) -> None:
    store = sample_store
    grid = Grid("brackenridge", (Chunking(400, 60), Chunking(800, 120)), (2,), (None,), (RAG_TEMPLATE,))
    seen: list[str] = []
    sweep.prepare(store, grid, progress=lambda d, t, m: seen.append(m))
    assert any(m.startswith("Chunking 400/60 (1/2)") for m in seen)
    assert [k.name for k in store.list_kbs()] == ["brackenridge"]  # hidden from every picker
    scratch = {k.name: k for k in store.list_kbs(scratch=True) if k.name != "brackenridge"}
    assert sorted(scratch) == ["sweep--400-60--brackenridge", "sweep--800-120--brackenridge"]
    source = store.get_kb("brackenridge")
    small = scratch["sweep--400-60--brackenridge"]
    assert (small.chunk_size, small.chunk_overlap) == (400, 60)
    assert (small.embedding_model, small.analyser, small.retrieval_mode) == (
        source.embedding_model,
        source.analyser,
        source.retrieval_mode,
    )
    docs = {r.doc_id: r for r in store.list_documents("brackenridge")}
    rechunked = {r.doc_id: r for r in store.list_documents(small.name)}
    assert rechunked.keys() == docs.keys()
    assert all(rechunked[d].chunks > docs[d].chunks for d in docs if docs[d].chunks > 2)
    # Same chunking, same documents: the same chunks as the source (the page texts round-trip).
    same = "sweep--800-120--brackenridge"
    for doc_id in docs:
        texts = [h.text for h in store.chunks_of(same, doc_id)]
        assert texts == [h.text for h in store.chunks_of("brackenridge", doc_id)]
    hit = store.search(small.name, "How long is parental leave at full pay?", k=1)[0]
    assert (hit.filename, hit.page) == ("employee_handbook.pdf", 5) and len(hit.text) <= 400

    embedded = store.embedder.embeddings
    calls = []
    original = embedded.embed_documents
    embedded.embed_documents = lambda texts: calls.append(len(texts)) or original(texts)  # type: ignore[method-assign]
    try:
        sweep.prepare(store, grid)  # reused: nothing re-embedded
        assert calls == []
        gone = next(iter(docs))
        store.delete_document(small.name, gone)
        sweep.prepare(store, grid)  # brought up to date: only the missing document is embedded
        assert sum(calls) == rechunked[gone].chunks
        assert {r.doc_id for r in store.list_documents(small.name)} == docs.keys()
    finally:
        del embedded.embed_documents

    assert [k.name for k in sweep.scratch_kbs(store, "brackenridge")] == sorted(scratch)
    assert sorted(sweep.delete_scratch(store, "brackenridge")) == sorted(scratch)
    assert [k.name for k in store.list_kbs(scratch=True)] == ["brackenridge"]


def test_apply_chunking_makes_an_ordinary_knowledge_base(sample_store: Store) -> None:
    kb = sweep.apply_chunking(sample_store, "brackenridge", "brackenridge-400", Chunking(400, 60))
    assert (kb.chunk_size, kb.chunk_overlap) == (400, 60)
    assert sorted(k.name for k in sample_store.list_kbs()) == ["brackenridge", "brackenridge-400"]
    with pytest.raises(KnowledgeBaseError, match="already exists"):
        sweep.apply_chunking(sample_store, "brackenridge", "brackenridge-400", Chunking(300, 30))
    with pytest.raises(KnowledgeBaseError, match="kept for sweeps"):
        sweep.apply_chunking(sample_store, "brackenridge", "sweep--x", Chunking(300, 30))


def test_the_rag_preset_file_round_trips_and_drives_presets(data_dir: Path) -> None:
    assert load_rag_preset(data_dir) is None
    rag = presets([], "kb")["RAG"].strategy
    assert (rag.top_k, rag.score_threshold, rag.template) == (RAG_TOP_K, None, RAG_TEMPLATE)
    saved = save_rag_preset(data_dir, RagPreset(3, 0.25, "Plain question", note="sweep #1 on kb"))
    assert load_rag_preset(data_dir) == saved and saved.updated
    chosen = load_rag_preset(data_dir)
    for name in ("RAG", "FT+RAG"):
        s = presets([], "kb", chosen)[name].strategy
        assert (s.name, s.top_k, s.score_threshold, s.template, s.kb) == (name, 3, 0.25, "Plain question", "kb")
    assert presets([], "kb", chosen)["PE"].strategy.template != "Plain question"
    with pytest.raises(EvaluationError, match="between 0 and 1"):
        save_rag_preset(data_dir, RagPreset(2, 1.5, "x"))
    assert load_rag_preset(data_dir) == saved  # nothing written
    (data_dir / "presets.json").write_text("{not json", encoding="utf-8")
    assert load_rag_preset(data_dir) is None  # unreadable: the built-in preset applies
    reset_rag_preset(data_dir)
    assert not (data_dir / "presets.json").exists()


@pytest.mark.slow
def test_a_sweep_is_one_run_of_the_runner_and_reads_back_into_a_grid(
    sample_store: Store, minilm: EmbeddingModel, tmp_path: Path, settings: Settings
) -> None:
    runtime = Runtime(sample_store, TemplateLibrary(tmp_path / "t"), ModelCatalog(settings, EmbeddedEngine(), None),
                      Records(tmp_path / "records.sqlite"))  # fmt: skip
    base = replace(presets(runtime.models.available(), "brackenridge")["RAG"].strategy, max_tokens=48)
    grid = Grid("brackenridge", (Chunking(400, 60), Chunking(1200, 180)), (2,), (None,), (RAG_TEMPLATE,))
    questions = [q for q in sample_set().questions if q.id in ("q03", "q04")]
    req = sweep.request(grid, base, "sweep", "sample", questions)
    assert sweep.answers(grid, len(questions)) == 4 and len(req.strategies) == 2
    run_id = start_run(runtime, req)
    started = threading.Event()

    def prepare(progress, cancel) -> None:  # type: ignore[no-untyped-def]
        started.set()
        sweep.prepare(sample_store, grid, progress=progress, cancel=cancel)

    job = start_evaluation(JobBoard(), runtime, run_id, minilm.embeddings, prepare)
    job.join(600)
    assert started.is_set() and job.view().status == "done", job.view().message
    stored = load_request(runtime, run_id)
    assert sweep.grid_of(stored, ["other", "brackenridge"]) == grid
    assert sweep.grid_of(stored) == replace(grid, kb="")
    run = report.load_run(runtime.records, run_id)
    cells = sweep.results(run)
    assert [c.cell for c in cells] == grid.cells and all(c.answered == 2 for c in cells)
    assert all(c.correct is not None and c.p50_s is not None for c in cells)
    best = sweep.best(cells)
    assert best is not None and best.correct == max(c.correct or 0 for c in cells)


def test_rebuilt_pdf_pages_keep_their_section_paths() -> None:
    """Re-chunking rebuilds pages from chunks: a PDF's section paths (from its outline) come back with them."""
    doc = documents.parse(real("debian-reference-pages.pdf"), "reference.pdf")
    chunks = documents.split(doc, chunk_size=800, chunk_overlap=120)
    hits = [SearchHit(c.text, 0.0, c.doc_id, c.filename, c.page, c.index, c.heading) for c in chunks]
    rebuilt = replace(doc, pages=tuple(sweep.page_texts(hits, 120)))
    again = documents.split(rebuilt, chunk_size=800, chunk_overlap=120)
    root = next(c for c in again if "The root account is also called superuser" in c.text)
    assert root.heading == "GNU/Linux tutorials > 1.1 Console basics > 1.1.3 The root account"
    assert {c.heading for c in again} == {c.heading for c in chunks}
