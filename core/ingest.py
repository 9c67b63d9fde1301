"""Uploads -> parsed, chunked, embedded documents in a knowledge base, with a report per file."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from core import documents
from core import language as lang
from core.documents import Chunk, OcrLimits, ParsedDocument
from core.embeddings import embed_in_batches
from core.errors import AppError, DocumentError, ParseCancelled
from core.files import now_iso
from core.knowledge_base import KnowledgeBase
from core.progress import CancelFlag, Progress
from core.store import DocumentRecord, Store

log = logging.getLogger(__name__)

# held: not stored because its language does not fit the knowledge base (`ingest(..., hold_mismatched=True)`).
Status = Literal["added", "replaced", "unchanged", "refused", "cancelled", "held"]


@dataclass(frozen=True)
class Upload:
    """A file to add: its bytes, or a function that reads them when their turn comes.

    With a reader, `ingest` holds one file's bytes at a time, not a copy of every file in a batch.
    """

    filename: str
    source: bytes | Callable[[], bytes]

    @property
    def data(self) -> bytes:
        return self.source if isinstance(self.source, bytes) else self.source()


@dataclass(frozen=True)
class FileReport:
    filename: str
    status: Status
    pages: int = 0
    chunks: int = 0
    seconds: float = 0.0
    message: str = ""
    doc_id: str | None = None
    language: str | None = None


@dataclass
class _Pending:
    doc: ParsedDocument
    chunks: list[Chunk]
    seconds: float

    @cached_property
    def language(self) -> str | None:
        return lang.detect_pages(p.text for p in self.doc.pages)


def ingest(
    store: Store,
    kb: str,
    uploads: Sequence[Upload],
    *,
    max_bytes: int | None = None,
    ocr: OcrLimits | None = None,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
    group_chunks: int = 512,
    hold_mismatched: bool = False,
) -> list[FileReport]:
    """Add files to a knowledge base; each file is either fully searchable or absent.

    Pages are read one by one with progress (OCR too, within `ocr`'s page and time limits per file), and
    cancelling is seen between pages: then no file of the batch is added.

    Unchanged content is skipped without parsing or embedding; a changed file with the name
    of an existing document replaces it; bad files are refused with the reason and leave the
    knowledge base as it was. Chunks are embedded across documents in groups of whole
    documents (up to `group_chunks` chunks, length-sorted batches as SentenceTransformer does),
    and each document is stored and committed once its group is embedded. Cancelling stops
    between batches: finished groups stay, the group in progress and the rest are not added.

    A knowledge base created without a chosen model takes the one that fits its first documents'
    language (`Store.fit_kb`). A document whose language the knowledge base does not fit (Chinese
    into MiniLM) is stored with a note saying so, or, with `hold_mismatched`, not stored: its report
    is "held", with the reason and its language, so the caller can offer a knowledge base that fits.

    Returns:
        One report per upload, in upload order.

    """
    info = store.require_kb(kb)
    reports: dict[int, FileReport] = {}
    pending: dict[int, _Pending] = {}
    seen: dict[str, str] = {}  # document id -> file name, for copies within the batch
    stopped = False
    for i, upload in enumerate(uploads):
        if stopped or (cancel is not None and cancel.is_set()):
            stopped = True
            reports[i] = FileReport(upload.filename, "cancelled", message="Cancelled; not added.")
            continue
        if progress is not None:
            progress(0, 0, f"Reading {upload.filename} ({i + 1}/{len(uploads)})")
        read = _read(store, kb, info, upload, seen, max_bytes=max_bytes, ocr=ocr, progress=progress, cancel=cancel)
        if isinstance(read, FileReport):
            reports[i] = read
            stopped = read.status == "cancelled"
        else:
            pending[i] = read
    if pending and (info.auto_model or info.auto_analyser):
        info = store.fit_kb(kb, lang.combined(p.language for p in pending.values()))
    if hold_mismatched:
        reports |= _hold_mismatched(pending, info)
    reports |= _embed_and_store(store, kb, pending, progress, cancel, group_chunks)
    return [reports[i] for i in range(len(uploads))]


def _read(
    store: Store,
    kb: str,
    info: KnowledgeBase,
    upload: Upload,
    seen: dict[str, str],
    *,
    max_bytes: int | None,
    ocr: OcrLimits | None,
    progress: Progress | None,
    cancel: CancelFlag | None,
) -> FileReport | _Pending:
    """One upload parsed and split (added to `seen`), or its report: unchanged, refused, or cancelled."""
    started = time.perf_counter()
    try:
        name = documents.check_filename(upload.filename)
        data = upload.data  # read once, dropped after parsing: the parsed text is what is kept
        doc_id = documents.document_id(data)
        existing = store.find_document(kb, doc_id=doc_id)
        if existing is not None or doc_id in seen:
            same_as = existing.filename if existing else seen[doc_id]
            note = "already in the knowledge base" + ("" if same_as == name else f" as {same_as}")
            return FileReport(
                name,
                "unchanged",
                pages=existing.pages if existing else 0,
                chunks=existing.chunks if existing else 0,
                seconds=time.perf_counter() - started,
                message=f"Unchanged: {note}; skipped.",
                doc_id=doc_id,
            )
        should_stop = cancel.is_set if cancel is not None else None
        doc = documents.parse(data, name, max_bytes=max_bytes, ocr=ocr, progress=progress, should_stop=should_stop)
        chunks = documents.split(doc, chunk_size=info.chunk_size, chunk_overlap=info.chunk_overlap)
    except ParseCancelled as e:
        return FileReport(upload.filename, "cancelled", seconds=time.perf_counter() - started, message=str(e))
    except DocumentError as e:
        return FileReport(upload.filename, "refused", seconds=time.perf_counter() - started, message=str(e))
    seen[doc_id] = name
    return _Pending(doc, chunks, time.perf_counter() - started)


def _hold_mismatched(pending: dict[int, _Pending], info: KnowledgeBase) -> dict[int, FileReport]:
    """Take the documents whose language the knowledge base does not fit out of `pending`; their reports."""
    held: dict[int, FileReport] = {}
    for i, item in list(pending.items()):
        if why := lang.mismatch(item.language, info.embedding_model, info.analyser):
            held[i] = FileReport(item.doc.filename, "held", message=f"Not added: {why}", language=item.language)
            del pending[i]
    return held


def add_parsed(
    store: Store,
    kb: str,
    docs: Sequence[ParsedDocument],
    *,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
    group_chunks: int = 512,
) -> list[FileReport]:
    """Add documents already parsed (e.g. rebuilt from another knowledge base's chunks), as `ingest` does.

    Each is split with the knowledge base's own chunking, embedded with its model and committed whole;
    one already there (same id) is skipped, one with the name of another document replaces it.
    """
    info = store.require_kb(kb)
    reports: dict[int, FileReport] = {}
    pending: dict[int, _Pending] = {}
    for i, doc in enumerate(docs):
        existing = store.find_document(kb, doc_id=doc.doc_id)
        if existing is not None:
            reports[i] = FileReport(doc.filename, "unchanged", existing.pages, existing.chunks, doc_id=doc.doc_id,
                                    message="Unchanged: already in the knowledge base; skipped.")  # fmt: skip
            continue
        started = time.perf_counter()
        chunks = documents.split(doc, chunk_size=info.chunk_size, chunk_overlap=info.chunk_overlap)
        pending[i] = _Pending(doc, chunks, time.perf_counter() - started)
    reports |= _embed_and_store(store, kb, pending, progress, cancel, group_chunks)
    return [reports[i] for i in range(len(docs))]


def _embed_and_store(
    store: Store,
    kb: str,
    pending: dict[int, _Pending],
    progress: Progress | None,
    cancel: CancelFlag | None,
    group_chunks: int,
) -> dict[int, FileReport]:
    """Embed the pending documents' chunks group by group and store each document whole."""
    embeddings = store.embedder_for(store.require_kb(kb)).embeddings
    reports: dict[int, FileReport] = {}

    def report(done: int, total: int, message: str) -> None:
        if progress is not None:
            progress(done, total, message)

    total = sum(len(p.chunks) for p in pending.values())
    done = 0
    cancelled = False

    def on_batch(n: int) -> None:
        nonlocal done
        done += n
        report(done, total, f"Embedding chunks: {done}/{total}")

    for group in _groups(pending, group_chunks):
        if cancelled or (cancel is not None and cancel.is_set()):
            cancelled = True
            vectors = None
        else:
            started = time.perf_counter()
            texts = [c.text for i in group for c in pending[i].chunks]
            vectors = embed_in_batches(
                embeddings,
                texts,
                on_batch=on_batch,
                should_stop=cancel.is_set if cancel is not None else None,
            )
            embed_seconds = time.perf_counter() - started
        if vectors is None:
            cancelled = True
            for i in group:
                reports[i] = FileReport(pending[i].doc.filename, "cancelled", message="Cancelled; not added.")
            continue
        offset = 0
        for i in group:
            item = pending[i]
            share = len(item.chunks) / max(len(texts), 1)
            reports[i] = _store_document(
                store, kb, item, vectors[offset : offset + len(item.chunks)], item.seconds + share * embed_seconds
            )
            offset += len(item.chunks)
        report(done, total, f"Stored {offset} chunks")
    report(done if cancelled else total, total, "Cancelled" if cancelled else "Done")
    return reports


def _groups(pending: dict[int, _Pending], limit: int) -> list[list[int]]:
    """Whole documents in upload order, grouped up to `limit` chunks (a bigger one stands alone)."""
    groups: list[list[int]] = []
    size = limit
    for i, item in pending.items():
        n = len(item.chunks)
        if groups and size + n <= limit:
            groups[-1].append(i)
            size += n
        else:
            groups.append([i])
            size = n
    return groups


def _store_document(store: Store, kb: str, item: _Pending, vectors: list[list[float]], seconds: float) -> FileReport:
    """Upsert a document's chunks, then commit it (the manifest entry), then drop its old version."""
    doc = item.doc
    started = time.perf_counter()
    try:
        store.upsert_chunks(kb, item.chunks, vectors)
        previous = store.find_document(kb, filename=doc.filename)
        store.commit(
            DocumentRecord(
                kb=kb,
                doc_id=doc.doc_id,
                filename=doc.filename,
                kind=doc.kind,
                pages=len(doc.pages),
                chunks=len(item.chunks),
                size_bytes=doc.size_bytes,
                added=now_iso(),
                encoding=doc.encoding,
                page_notes=page_notes(doc),
                language=item.language,
            )
        )
        if previous is not None and previous.doc_id != doc.doc_id:
            store.delete_document(kb, previous.doc_id)
    except BaseException as e:
        # Whatever stopped us (a store error, Ctrl-C, a Streamlit rerun), leave no half document.
        _rollback(store, kb, doc.doc_id)
        if not isinstance(e, AppError):
            raise
        return FileReport(doc.filename, "refused", message=f"Not added: {e}")
    notes = [f"Replaced the earlier version of {doc.filename}."] if previous is not None else []
    notes += [f"Note: {w}." for w in doc.warnings]
    info = store.get_kb(kb)
    if why := lang.mismatch(item.language, info.embedding_model, info.analyser):
        log.warning("%s in %s: %s", doc.filename, kb, why)
        notes.append(f"Note: {why}")
    return FileReport(
        doc.filename,
        "replaced" if previous is not None else "added",
        pages=len(doc.pages),
        chunks=len(item.chunks),
        seconds=seconds + time.perf_counter() - started,
        message=" ".join(notes),
        doc_id=doc.doc_id,
        language=item.language,
    )


def page_notes(doc: ParsedDocument) -> dict[str, list[int]]:
    """The document's pages that are not plain searched text, by what they are: contents, index, blank, ocr."""
    notes = {role: list(doc.pages_with(role)) for role in ("contents", "index", "blank")}
    notes["ocr"] = list(doc.ocr_pages)
    return {key: pages for key, pages in notes.items() if pages}


def _rollback(store: Store, kb: str, doc_id: str) -> None:
    try:
        if store.find_document(kb, doc_id=doc_id) is None:
            store.delete_chunks(kb, doc_id)
    except AppError:
        log.exception("Could not roll back document %s in %s", doc_id, kb)
