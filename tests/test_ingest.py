"""Ingest into Qdrant local mode with the real MiniLM."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from langchain_qdrant import QdrantVectorStore
from qdrant_client import models

from core.config import Settings
from core.documents import OcrLimits, point_id
from core.embeddings import EmbeddingModel
from core.errors import EmbeddingMismatchError, KnowledgeBaseError, StoreLockedError
from core.ingest import Upload, ingest
from core.store import Store
from tests.helpers import (
    HTML_PAGE,
    PNG_BYTES,
    CountingEmbeddings,
    encrypted_pdf,
    real,
    scanned_pages,
    scanned_pdf,
    zip_bomb,
    zip_of,
)

pytestmark = pytest.mark.slow

HANDBOOK = (
    b"# Otter Handbook\n\n## Feeding\n\nOtters at the Wrenfield sanctuary are fed herring at 09:40 and 16:10.\n\n"
    b"## Night shift\n\nThe night keeper, Ada Brill, checks the pools every 90 minutes.\n"
)


def counted(store: Store) -> CountingEmbeddings:
    emb = store.embedder.embeddings
    assert isinstance(emb, CountingEmbeddings)
    return emb


def test_ingest_makes_chunks_searchable_with_their_metadata(store: Store, kb: str) -> None:
    [report] = ingest(store, kb, [Upload("otters.md", HANDBOOK)])
    assert report.status == "added" and report.chunks == 2 and report.pages == 1
    hits = store.search(kb, "When are the otters fed?", k=2)
    assert "09:40" in hits[0].text
    assert hits[0].filename == "otters.md" and hits[0].heading == "Otter Handbook > Feeding"
    assert hits[0].score > hits[1].score
    assert store.count_chunks(kb, report.doc_id) == 2
    [doc] = store.list_documents(kb)
    assert (doc.filename, doc.chunks, doc.kind) == ("otters.md", 2, "markdown")


def test_point_ids_are_uuid5_of_document_and_index(store: Store, kb: str) -> None:
    [report] = ingest(store, kb, [Upload("otters.md", HANDBOOK)])
    assert report.doc_id is not None
    points, _ = store.client.scroll(kb, limit=10)
    assert {str(p.id) for p in points} == {point_id(report.doc_id, 0), point_id(report.doc_id, 1)}
    assert uuid.UUID(point_id(report.doc_id, 0)).version == 5


def test_unchanged_reupload_is_skipped_without_embedding(store: Store, kb: str) -> None:
    ingest(store, kb, [Upload("otters.md", HANDBOOK)])
    before = counted(store).documents_embedded
    reports = ingest(store, kb, [Upload("otters.md", HANDBOOK), Upload("copy.md", HANDBOOK)])
    assert [r.status for r in reports] == ["unchanged", "unchanged"]
    assert "as otters.md" in reports[1].message
    assert counted(store).documents_embedded == before
    assert len(store.list_documents(kb)) == 1


def test_duplicate_files_in_one_upload_are_embedded_once(store: Store, kb: str) -> None:
    reports = ingest(store, kb, [Upload("a.md", HANDBOOK), Upload("b.md", HANDBOOK)])
    assert [r.status for r in reports] == ["added", "unchanged"]
    assert counted(store).documents_embedded == 2


def test_changed_file_with_same_name_replaces_old_chunks(store: Store, kb: str) -> None:
    [first] = ingest(store, kb, [Upload("otters.md", HANDBOOK)])
    [second] = ingest(store, kb, [Upload("otters.md", HANDBOOK.replace(b"09:40", b"07:15"))])
    assert second.status == "replaced" and second.doc_id != first.doc_id
    assert first.doc_id is not None
    assert store.count_chunks(kb, first.doc_id) == 0
    assert [d.doc_id for d in store.list_documents(kb)] == [second.doc_id]
    assert "07:15" in store.search(kb, "When are the otters fed?", k=1)[0].text


def test_delete_document_removes_all_its_points(store: Store, kb: str) -> None:
    keep, gone = ingest(store, kb, [Upload("otters.md", HANDBOOK), Upload("herons.txt", b"Herons nest in March.")])
    assert gone.doc_id is not None and keep.doc_id is not None
    store.delete_document(kb, gone.doc_id)
    assert store.count_chunks(kb, gone.doc_id) == 0
    assert store.count_chunks(kb) == keep.chunks
    assert all(h.filename == "otters.md" for h in store.search(kb, "herons nest", k=5))


def test_chunks_without_a_manifest_entry_are_invisible(store: Store, kb: str, settings: Settings) -> None:
    """The manifest is written last: chunks stored before it are never returned, even the best match."""
    from core.documents import parse, split

    doc = parse(b"The lighthouse keeper is named Orla Finch.", "keeper.txt")
    chunks = split(doc, chunk_size=800, chunk_overlap=100)
    store.upsert_chunks(kb, chunks, store.embedder.embeddings.embed_documents([c.text for c in chunks]))
    assert store.count_chunks(kb) == 1
    assert store.search(kb, "Who keeps the lighthouse?", k=3) == []
    # With a finished document beside it, the unfinished chunk still never shows, though it matches best.
    [otters] = ingest(store, kb, [Upload("otters.md", HANDBOOK)])
    hits = store.search(kb, "Who keeps the lighthouse?", k=3)
    assert [h.filename for h in hits] == ["otters.md", "otters.md"]
    # LangChain's view of the same collection sees every stored chunk: it would have returned it first.
    raw = QdrantVectorStore(
        client=store.client,
        collection_name=kb,
        embedding=store.embedder.embeddings,
        vector_name=store.get_kb(kb).dense_vector,
        validate_collection_config=False,
    )
    assert raw.similarity_search("Who keeps the lighthouse?", k=1)[0].metadata["filename"] == "keeper.txt"


def test_cancel_mid_ingest_keeps_finished_files_and_rolls_back_the_rest(store: Store, kb: str) -> None:
    long_text = "\n\n".join(f"Section {i}: the buoy number {i} is painted yellow." * 4 for i in range(600))
    cancel = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int, message: str) -> None:
        seen.append((done, total))
        if done >= 60:  # the second file is part-way through
            cancel.set()

    reports = ingest(
        store,
        kb,
        [Upload("otters.md", HANDBOOK), Upload("buoys.txt", long_text.encode()), Upload("late.txt", b"Never added.")],
        progress=progress,
        cancel=cancel,
        group_chunks=64,  # otters.md, buoys.txt and late.txt each form a group of their own
    )
    assert [r.status for r in reports] == ["added", "cancelled", "cancelled"]
    assert [d.filename for d in store.list_documents(kb)] == ["otters.md"]
    assert store.count_chunks(kb) == reports[0].chunks
    done, total = seen[-1]
    assert 60 <= done < total  # stopped part-way, not after embedding everything


def test_crash_while_embedding_leaves_no_half_document(store: Store, kb: str) -> None:
    long_text = "\n\n".join(f"Paragraph {i} about harbour pilots and their boats." * 4 for i in range(400))
    counted(store).fail_after = 70
    with pytest.raises(RuntimeError, match="simulated crash"):
        ingest(store, kb, [Upload("otters.md", HANDBOOK), Upload("pilots.txt", long_text.encode())], group_chunks=64)
    assert [d.filename for d in store.list_documents(kb)] == ["otters.md"]
    assert store.count_chunks(kb) == 2


# Every bad input is refused (or handled), and the knowledge base keeps every point it had.
BAD_INPUTS = [
    ("empty.txt", b"", "refused", "empty"),
    ("corrupt.pdf", b"%PDF-1.4\n%%garbage without objects", "refused", "damaged"),
    ("locked.pdf", encrypted_pdf(), "refused", "password"),
    ("scan.pdf", scanned_pdf(), "refused", "OCR"),
    ("photo.pdf", PNG_BYTES, "refused", "PNG image"),
    ("slides.pptx", b"PK\x03\x04zip", "refused", "PDF, Word"),
    ("big.txt", b"x" * (1024 * 1024 + 1), "refused", "limit"),
    ("../../escape.txt", b"path traversal", "refused", "path"),
    ("latin1.txt", "Le phare de Kervélec est peint en rouge.".encode("cp1252"), "added", "cp1252"),
    ("corrupt.docx", b"PK\x03\x04" + bytes(60), "refused", "not a valid Word document"),
    ("sheet.docx", zip_of({"xl/workbook.xml": b"<workbook/>"}), "refused", "Excel workbook"),
    ("bomb.docx", zip_bomb(), "refused", "not opened"),
    ("photo.png", PNG_BYTES, "refused", "not a readable image"),
    ("nav.html", b"<nav>Home</nav><script>alert(1)</script>", "refused", "no main text"),
]


@pytest.mark.parametrize(("filename", "data", "status", "words"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_loses_nothing(store: Store, kb: str, filename: str, data: bytes, status: str, words: str) -> None:
    [base] = ingest(store, kb, [Upload("otters.md", HANDBOOK)])
    before = store.count_chunks(kb)
    [report] = ingest(store, kb, [Upload(filename, data)], max_bytes=1024 * 1024)
    assert report.status == status
    assert words.lower() in report.message.lower()
    assert store.count_chunks(kb, base.doc_id) == before
    assert "09:40" in store.search(kb, "When are the otters fed?", k=1)[0].text
    if status == "added":
        stored = store.chunks_of(kb, report.doc_id or "")
        assert "".join(h.text for h in stored).replace("\n", "") in data.decode("cp1252").replace("\n", "")


def test_markup_in_a_document_is_stored_as_literal_text(store: Store, kb: str) -> None:
    """HTML and Markdown in a file are its words: kept verbatim (not stripped, not interpreted), heading included."""
    markup = "<script>alert('owned')</script> <img src=x onerror=alert(1)> [link](http://evil.example)"
    data = f"# Note [x](http://evil.example)\n\nThe pier opens at 06:00. {markup}\n".encode()
    [report] = ingest(store, kb, [Upload("xss.md", data)])
    assert report.status == "added"
    [chunk] = store.chunks_of(kb, report.doc_id or "")
    assert markup in chunk.text
    assert chunk.heading == "Note [x](http://evil.example)"


def test_web_page_is_stored_as_its_main_text_without_scripts(store: Store, kb: str) -> None:
    [report] = ingest(store, kb, [Upload("harbour.html", HTML_PAGE)])
    assert report.status == "added" and report.chunks == 2
    chunks = store.chunks_of(kb, report.doc_id or "")
    assert [c.heading for c in chunks] == ["Harbour guide", "Harbour guide > Fees"]
    assert not any("alert" in c.text or "<" in c.text or "Next chapter" in c.text for c in chunks)
    assert "Mooring costs 12 euros" in store.search(kb, "How much is mooring a night?", k=1)[0].text


def test_scanned_pdf_over_the_ocr_page_limit_stores_nothing(store: Store, kb: str) -> None:
    [base] = ingest(store, kb, [Upload("otters.md", HANDBOOK)])
    before = store.count_chunks(kb)
    [report] = ingest(store, kb, [Upload("scan.pdf", scanned_pages(3))], ocr=OcrLimits(max_pages=2))
    assert report.status == "refused" and "limit of 2 pages" in report.message
    assert store.count_chunks(kb) == before and [d.doc_id for d in store.list_documents(kb)] == [base.doc_id]


def test_real_pdf_keeps_its_contents_page_out_of_search_but_listed(store: Store, kb: str) -> None:
    pages: list[tuple[int, int]] = []
    [report] = ingest(
        store, kb, [Upload("reference.pdf", real("debian-reference-pages.pdf"))],
        progress=lambda done, total, message: pages.append((done, total)) if message.startswith("Reading ") else None,
    )  # fmt: skip
    assert report.status == "added" and report.pages == 4
    assert (0, 4) in pages and (3, 4) in pages  # page by page in the progress bar
    assert "contents page(s) 1 listed but kept out of search" in report.message
    [doc] = store.list_documents(kb)
    assert doc.page_notes == {"contents": [1]}
    chunks = store.chunks_of(kb, doc.doc_id)
    assert {c.page for c in chunks} == {2, 3, 4}
    hit = store.search(kb, "What is the root account also called?", k=1)[0]
    assert hit.heading == "GNU/Linux tutorials > 1.1 Console basics > 1.1.3 The root account"


def test_stop_while_reading_pages_adds_nothing_of_the_batch(store: Store, kb: str) -> None:
    cancel = threading.Event()

    def progress(done: int, total: int, message: str) -> None:
        if message.startswith("Reading reference.pdf: page 2"):
            cancel.set()

    reports = ingest(
        store,
        kb,
        [Upload("otters.md", HANDBOOK), Upload("reference.pdf", real("debian-reference-pages.pdf")),
         Upload("late.txt", b"Never read.")],
        progress=progress,
        cancel=cancel,
    )  # fmt: skip
    assert [r.status for r in reports] == ["cancelled", "cancelled", "cancelled"]
    assert "page 3 of 4" in reports[1].message
    assert store.list_documents(kb) == [] and store.count_chunks(kb) == 0


def test_scanned_pdf_is_read_by_ocr_and_the_report_says_which_pages(store: Store, kb: str) -> None:
    [report] = ingest(store, kb, [Upload("scan.pdf", real("debian-reference-scanned.pdf"))])
    assert report.status == "added" and "read by OCR: page(s) 1" in report.message
    [doc] = store.list_documents(kb)
    assert doc.page_notes == {"ocr": [1]}
    assert "Packet Filtering HOWTO" in store.search(kb, "Which HOWTO covers packet filtering?", k=1)[0].text


def test_locked_local_storage_is_refused_clearly_and_keeps_its_data(
    settings: Settings, minilm: EmbeddingModel, tmp_path: Path
) -> None:
    store = Store.open(settings, minilm)
    store.create_kb("keep", chunk_size=800, chunk_overlap=100)
    ingest(store, "keep", [Upload("otters.md", HANDBOOK)])
    store.close()
    path = settings.local_qdrant_path
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from qdrant_client import QdrantClient; c = QdrantClient(path={str(path)!r}); print('ready', flush=True)"
            "; input()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The other process says when it holds the lock (polling with our own opens raced it: an open of
        # ours could make its open fail).
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready", holder.stderr
        with pytest.raises(StoreLockedError) as refused:
            Store.open(settings, minilm)
        message = str(refused.value)
        assert "in use by another process" in message and "QDRANT_URL" in message
    finally:
        holder.communicate("\n", timeout=30)
    reopened = Store.open(settings, minilm)
    assert [d.filename for d in reopened.list_documents("keep")] == ["otters.md"]
    assert reopened.count_chunks("keep") == 2
    reopened.close()


def test_store_survives_a_restart(settings: Settings, minilm: EmbeddingModel) -> None:
    store = Store.open(settings, minilm)
    store.create_kb("persist", chunk_size=500, chunk_overlap=50)
    ingest(store, "persist", [Upload("otters.md", HANDBOOK)])
    store.close()
    again = Store.open(settings, minilm)
    kb = again.get_kb("persist")
    assert (kb.chunk_size, kb.chunk_overlap, kb.embedding_model, kb.dimension) == (500, 50, "all-MiniLM-L6-v2", 384)
    assert "Ada Brill" in again.search("persist", "who is the night keeper", k=1)[0].text
    again.close()


def test_other_embedding_model_is_refused(store: Store, kb: str, minilm: EmbeddingModel, settings: Settings) -> None:
    ingest(store, kb, [Upload("otters.md", HANDBOOK)])
    store.close()
    other = EmbeddingModel(name="nomic-embed-text", dimension=768, embeddings=minilm.embeddings, max_tokens=512)
    with Store.open(settings, other) as reopened, pytest.raises(EmbeddingMismatchError) as info:
        reopened.search(kb, "otters")
    assert "all-MiniLM-L6-v2 (384 dims)" in str(info.value) and "nomic-embed-text" in str(info.value)


@pytest.mark.parametrize("name", ["", "has space", "-leading", "x" * 49, "ragtune_manifest", "semi;colon", "../up"])
def test_bad_knowledge_base_names_are_refused(store: Store, name: str) -> None:
    with pytest.raises(KnowledgeBaseError, match="valid knowledge-base name"):
        store.create_kb(name, chunk_size=800, chunk_overlap=100)


def test_knowledge_bases_list_create_and_delete(store: Store, kb: str) -> None:
    ingest(store, kb, [Upload("otters.md", HANDBOOK)])
    with pytest.raises(KnowledgeBaseError, match="already exists"):
        store.create_kb(kb, chunk_size=800, chunk_overlap=100)
    store.client.create_collection("someone_elses", vectors_config=models.VectorParams(size=4, distance="Cosine"))
    assert [k.name for k in store.list_kbs()] == [kb]  # collections the app did not make are left out
    store.delete_kb(kb)
    assert store.list_kbs() == []
    assert store.client.count("ragtune_manifest").count == 0
    with pytest.raises(KnowledgeBaseError, match="does not exist"):
        store.search(kb, "otters")


def test_store_failure_rolls_back_only_that_document(store: Store, kb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import StoreError

    real_commit = store.commit

    def flaky_commit(record: object) -> None:
        if getattr(record, "filename", "") == "bad.txt":
            raise StoreError("Qdrant failed while recording bad.txt: disk full")
        real_commit(record)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "commit", flaky_commit)
    good, bad = ingest(store, kb, [Upload("otters.md", HANDBOOK), Upload("bad.txt", b"Gulls eat chips at noon.")])
    assert (good.status, bad.status) == ("added", "refused")
    assert "disk full" in bad.message
    assert bad.doc_id is None and store.count_chunks(kb) == good.chunks


def test_embedding_in_sorted_batches_keeps_input_order(minilm: EmbeddingModel) -> None:
    from core.embeddings import embed_in_batches

    texts = ["short", "a much longer sentence about the harbour master and the tides", "mid length text here"]
    batched = embed_in_batches(minilm.embeddings, texts, batch_size=2)
    assert batched is not None
    direct = minilm.embeddings.embed_documents(texts)
    for a, b in zip(batched, direct, strict=True):
        assert sum(x * y for x, y in zip(a, b, strict=True)) > 0.999


def test_unreachable_qdrant_server_says_what_to_do(minilm: EmbeddingModel) -> None:
    import socket

    from core.errors import StoreUnavailableError

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings.from_env(qdrant_url=f"http://127.0.0.1:{port}")
    with pytest.raises(StoreUnavailableError) as info:
        Store.open(settings, minilm)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "unset QDRANT_URL" in message


def test_uploads_given_as_readers_are_read_one_at_a_time(store: Store, kb: str) -> None:
    """The page hands over readers, so a batch never holds a copy of every file at once."""
    reads: list[str] = []

    def reader(name: str, text: str):  # type: ignore[no-untyped-def]
        def read() -> bytes:
            reads.append(name)
            return text.encode()

        return read

    uploads = [Upload(f"{n}.txt", reader(f"{n}.txt", f"Buoy {n} sits {n * 7} metres off the pier.")) for n in "abc"]
    reports = ingest(store, kb, uploads)
    assert [r.status for r in reports] == ["added", "added", "added"]
    assert reads == ["a.txt", "b.txt", "c.txt"]  # each read once, in turn
