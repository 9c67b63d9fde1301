"""Knowledge bases in Qdrant: one collection each, searched by meaning, by keywords, or both.

A knowledge base's collection records, in its metadata, the embedding model and dimension it
was built with, its chunking, and the analyser of its keyword (sparse) index. Documents become
visible only through the manifest (`core.manifest`), whose entry is written after every chunk
is stored, so search never sees half a document. The same code serves Qdrant local mode and a
Qdrant server; search goes to Qdrant's Query API directly (dense, sparse, or both fused by
reciprocal rank).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException

from core import language as lang
from core import search, sparse
from core.config import Settings
from core.documents import Chunk
from core.documents import point_id as chunk_point_id
from core.embeddings import EmbeddingCatalog, EmbeddingModel
from core.errors import (
    EmbeddingError,
    EmbeddingMismatchError,
    KnowledgeBaseError,
    StoreError,
    StoreUnavailableError,
)
from core.files import now_iso
from core.knowledge_base import (
    DEFAULT_MODE,
    RETRIEVAL_MODES,
    SCRATCH_PREFIX,
    KbHandle,
    KnowledgeBase,
    RetrievalMode,
    check_kb_name,
    checked_settings,
    embedder_for,
)
from core.manifest import MANIFEST, DocumentRecord, Manifest
from core.qdrant import create_collection, open_client
from core.search import CONTENT_KEY, DENSE, METADATA_KEY, SPARSE, SearchHit, unit_vectors
from core.search import doc_filter as _doc_filter
from core.search import hit as _hit

__all__ = [
    "DEFAULT_MODE",
    "MANIFEST",
    "RETRIEVAL_MODES",
    "SCRATCH_PREFIX",
    "DocumentRecord",
    "KnowledgeBase",
    "RetrievalMode",
    "SearchHit",
    "Store",
    "check_kb_name",
    "open_client",
]

log = logging.getLogger(__name__)

_CHUNK_WINDOW = 256


class Store:
    """Knowledge bases, their documents and search, over one Qdrant client.

    Each knowledge base is embedded with the model it records: the store's default model, or
    one the catalog loads by name. Qdrant local mode is not safe for concurrent writers, so
    every call takes one lock; Streamlit sessions share a Store through `st.cache_resource`.
    """

    def __init__(
        self,
        client: QdrantClient,
        embedder: EmbeddingModel,
        *,
        server: bool = False,
        catalog: EmbeddingCatalog | None = None,
    ) -> None:
        self.client = client
        self._embedder = embedder
        self.catalog = catalog
        self.server = server
        self._lock = threading.RLock()
        # Local mode scores sparse vectors point by point in Python; a server has its own inverted index.
        self.in_process_keywords = not server
        self._handles: dict[str, KbHandle] = {}  # open knowledge bases, dropped when changed through this store
        with self.guard("preparing the manifest"):
            self.manifest = Manifest(client, server=server)

    @classmethod
    def open(cls, settings: Settings, embedder: EmbeddingModel, catalog: EmbeddingCatalog | None = None) -> Store:
        return cls(open_client(settings), embedder, server=bool(settings.qdrant_url), catalog=catalog)

    @property
    def embedder(self) -> EmbeddingModel:
        """The store's default embedding model (a knowledge base that records another gets it from the catalog)."""
        return self._embedder

    @embedder.setter
    def embedder(self, model: EmbeddingModel) -> None:
        self._embedder = model
        self._handles.clear()  # each open knowledge base works its embedder out again

    def close(self) -> None:
        with self._lock:
            self.client.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def guard(self, action: str) -> Iterator[None]:
        """Serialize access and translate client errors into StoreError (for every call on `client`)."""
        with self._lock:
            try:
                yield
            except (StoreError, EmbeddingMismatchError, EmbeddingError):
                raise
            except (httpx.TransportError, ResponseHandlingException) as e:
                raise StoreUnavailableError(f"Qdrant stopped answering while {action} ({e}).") from e
            except Exception as e:
                raise StoreError(f"Qdrant failed while {action}: {e}") from e

    # Knowledge bases

    def list_kbs(self, *, scratch: bool = False) -> list[KnowledgeBase]:
        """The app's knowledge bases; a parameter sweep's scratch ones (`SCRATCH_PREFIX`) only with `scratch`."""
        with self.guard("listing knowledge bases"):
            names = sorted(c.name for c in self.client.get_collections().collections)
            kbs = [self._read_kb(n) for n in names if n != MANIFEST and (scratch or not n.startswith(SCRATCH_PREFIX))]
        return [kb for kb in kbs if kb is not None]

    def _read_kb(self, name: str) -> KnowledgeBase | None:
        return KnowledgeBase.from_metadata(name, self.client.get_collection(name).config.metadata)

    def get_kb(self, name: str) -> KnowledgeBase:
        with self.guard(f"opening knowledge base {name!r}"):
            kb = self._read_kb(name) if self.client.collection_exists(name) else None
        if kb is None:
            raise KnowledgeBaseError(f"Knowledge base {name!r} does not exist; create it first.")
        return kb

    def create_kb(
        self,
        name: str,
        *,
        chunk_size: int,
        chunk_overlap: int,
        embedding_model: str | None = None,
        analyser: str | None = lang.AUTO,
        retrieval_mode: RetrievalMode | None = None,
        language: str | None = None,
        created: str | None = None,
    ) -> KnowledgeBase:
        """Create a knowledge base embedded with `embedding_model`.

        Without a chosen model (None), and with the analyser left to `core.language.AUTO`, they fit the
        documents' `language` (`core.language.fit`: English -> the store's MiniLM and English words,
        Chinese or mixed -> multilingual E5 and jieba); when the language is not known yet, the
        knowledge base starts on the English ones and its first ingest fits it (`fit_kb`).
        `analyser` names the keyword index's analyser (`core.sparse.ANALYSERS`); None makes a
        dense-only knowledge base.
        """
        name = check_kb_name(name)
        fit = lang.fit(language)
        auto_model, auto_analyser = embedding_model is None, analyser == lang.AUTO
        analyser, mode = checked_settings(chunk_size, chunk_overlap, fit.analyser if auto_analyser else analyser,
                                          retrieval_mode)  # fmt: skip
        if embedding_model is None and fit.embedding_model != lang.ENGLISH_FIT.embedding_model:
            embedding_model = fit.embedding_model
        model = self.embedder if embedding_model in (None, self.embedder.name) else self._load(embedding_model)
        follows = language is None  # decided now when the documents' language is known, else by the first ones
        kb = KnowledgeBase(
            name=name,
            embedding_model=model.name,
            dimension=model.dimension,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            created=created or now_iso(),
            analyser=analyser,
            retrieval_mode=mode,
            dense_vector=DENSE,
            auto_model=auto_model and follows,
            auto_analyser=auto_analyser and follows,
        )
        with self.guard(f"creating knowledge base {name!r}"):
            if self.client.collection_exists(name):
                raise KnowledgeBaseError(f"Knowledge base {name!r} already exists; pick another name.")
            self._handles.pop(name, None)
            create_collection(self.client, kb, server=self.server)
        return kb

    def create_kb_like(
        self, name: str, like: KnowledgeBase, *, chunk_size: int | None = None, chunk_overlap: int | None = None
    ) -> KnowledgeBase:
        """A new knowledge base with `like`'s embedding model, analyser and retrieval mode.

        Its chunking is `like`'s unless given: a copy for the sweep, or an import of an export.
        """
        return self.create_kb(
            name,
            chunk_size=like.chunk_size if chunk_size is None else chunk_size,
            chunk_overlap=like.chunk_overlap if chunk_overlap is None else chunk_overlap,
            embedding_model=like.embedding_model,
            analyser=like.analyser,
            retrieval_mode=like.retrieval_mode if like.analyser else None,  # type: ignore[arg-type]
        )

    def fit_kb(self, name: str, language: str | None) -> KnowledgeBase:
        """Give a knowledge base created without a chosen model the model and analyser that fit `language`.

        Only while it has no documents and still follows them (`auto_model` / `auto_analyser`): its empty
        collection is made again with the fitting settings, under the same name, chunking and date. A model
        that cannot be loaded here keeps the current one (the ingest report then says the documents do not fit).
        """
        with self._lock:  # no other write between the check and the new collection (two first uploads at once)
            return self._fit_kb(name, language)

    def _fit_kb(self, name: str, language: str | None) -> KnowledgeBase:
        kb = self.get_kb(name)
        if not (kb.auto_model or kb.auto_analyser) or self.list_documents(name):
            return kb
        fit = lang.fit(language)
        model = fit.embedding_model if kb.auto_model else kb.embedding_model
        if kb.auto_model and fit == lang.ENGLISH_FIT:
            model = self.embedder.name  # English: the store's own model, as `create_kb` gives it
        analyser = (fit.analyser if kb.auto_analyser else kb.analyser) if kb.analyser else None
        try:
            if model != self.embedder.name:
                self._load(model)
        except EmbeddingError as e:
            log.warning("Knowledge base %s stays on %s: %s", name, kb.embedding_model, e)
            model = kb.embedding_model
        if (model, analyser) == (kb.embedding_model, kb.analyser) or self.count_chunks(name):
            # Nothing to change, or chunks of an unfinished ingest are there: keep the collection, stop following.
            fitted = replace(kb, auto_model=False, auto_analyser=False)
            with self.guard(f"fitting knowledge base {name!r}"):
                self.client.update_collection(name, metadata=fitted.metadata())
            return fitted
        mode: RetrievalMode = kb.mode_for(None) if analyser else "dense"
        with self.guard(f"fitting knowledge base {name!r}"):
            self.client.delete_collection(name)
            self._handles.pop(name, None)
        fitted = self.create_kb(
            name,
            chunk_size=kb.chunk_size,
            chunk_overlap=kb.chunk_overlap,
            embedding_model=model,
            analyser=analyser,
            retrieval_mode=mode,
            created=kb.created,
        )
        log.info("Knowledge base %s fitted to %s documents: %s, %s", name, language, model, analyser)
        return fitted

    def delete_kb(self, name: str) -> None:
        self.get_kb(name)
        with self.guard(f"deleting knowledge base {name!r}"):
            self.manifest.remove_kb(name)
            self.client.delete_collection(name)
            self._handles.pop(name, None)

    def _load(self, model_name: str) -> EmbeddingModel:
        if self.catalog is None:
            raise EmbeddingError(f"Embedding model {model_name!r} is not available here; only {self.embedder.name} is.")
        return self.catalog.get(model_name)

    def embedder_for(self, kb: KnowledgeBase) -> EmbeddingModel:
        """The model that embeds this knowledge base's queries and chunks (`core.knowledge_base.embedder_for`)."""
        return embedder_for(kb, self.embedder, self.catalog)

    def require_kb(self, name: str) -> KnowledgeBase:
        """The knowledge base, refused if its embedding model is not available."""
        return self.open_kb(name).info

    def open_kb(self, name: str) -> KbHandle:
        """The knowledge base with the model that embeds it, worked out on first use and kept until changed here.

        Raises:
            KnowledgeBaseError: it does not exist.
            EmbeddingMismatchError: its embedding model is not available.

        """
        handle = self._handles.get(name)
        if handle is None:
            info = self.get_kb(name)
            handle = self._handles[name] = KbHandle(info, self.embedder_for(info))
        return handle

    # Documents

    def list_documents(self, kb: str) -> list[DocumentRecord]:
        with self.guard(f"listing documents of {kb!r}"):
            records = self.manifest.find(kb)
        return sorted(records, key=lambda r: (r.filename.lower(), r.added))

    def find_document(
        self, kb: str, *, doc_id: str | None = None, filename: str | None = None
    ) -> DocumentRecord | None:
        with self.guard("looking up a document"):
            found = self.manifest.find(kb, doc_id=doc_id, filename=filename)
        return found[0] if found else None

    def upsert_chunks(self, kb: str, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        """Store embedded chunks (and their keyword vectors); not searchable until `commit` names their document."""
        info = self.require_kb(kb)
        if any(len(v) != info.dimension for v in vectors):
            raise EmbeddingMismatchError(f"Vectors for {kb!r} must have {info.dimension} dimensions.")
        keywords = sparse.document_vectors([c.text for c in chunks], info.analyser) if info.analyser else None
        points = []
        for i, (chunk, vector) in enumerate(zip(chunks, unit_vectors(vectors), strict=True)):
            payload = {CONTENT_KEY: chunk.text, METADATA_KEY: chunk.metadata()}
            point_vector: Any = list(vector)
            if info.dense_vector:
                point_vector = {info.dense_vector: point_vector}
            if keywords is not None:
                point_vector[SPARSE] = models.SparseVector(indices=keywords[i].indices, values=keywords[i].values)
            points.append(models.PointStruct(id=chunk.point_id, vector=point_vector, payload=payload))
        for start in range(0, len(points), 256):
            with self.guard(f"storing chunks in {kb!r}"):
                self._written(kb)
                self.client.upsert(kb, points=points[start : start + 256])

    def upsert_points(self, kb: str, points: Sequence[models.PointStruct]) -> None:
        """Store points as exported from another store (`core.kb_transfer`): vectors as they are, no embedding."""
        with self.guard(f"storing chunks in {kb!r}"):
            self._written(kb)
            self.client.upsert(kb, points=list(points))

    def get_point(self, kb: str, doc_id: str, chunk_index: int) -> models.Record | None:
        """One chunk's point as stored: payload and every vector (to be put back by `upsert_points`)."""
        with self.guard(f"reading a chunk of {kb!r}"):
            ids = [chunk_point_id(doc_id, chunk_index)]
            found = self.client.retrieve(kb, ids, with_payload=True, with_vectors=True)
        return found[0] if found else None

    def commit(self, record: DocumentRecord) -> None:
        """Write the manifest entry that makes a document searchable."""
        with self.guard(f"recording {record.filename}"):
            self.manifest.write(record)

    def delete_document(self, kb: str, doc_id: str) -> None:
        """Hide the document first (manifest), then drop its chunks."""
        with self.guard(f"deleting a document from {kb!r}"):
            self.manifest.remove(kb, doc_id)
            self.delete_chunks(kb, doc_id)

    def delete_chunks(self, kb: str, doc_id: str) -> None:
        with self.guard(f"deleting chunks from {kb!r}"):
            self._written(kb)
            self.client.delete(kb, points_selector=models.FilterSelector(filter=_doc_filter([doc_id])))

    def count_chunks(self, kb: str, doc_id: str | None = None) -> int:
        with self.guard(f"counting chunks in {kb!r}"):
            flt = _doc_filter([doc_id]) if doc_id else None
            return int(self.client.count(kb, count_filter=flt, exact=True).count)

    def chunks_of(self, kb: str, doc_id: str, *, start: int = 0, limit: int | None = None) -> list[SearchHit]:
        """A document's chunks in reading order, from chunk `start`, at most `limit` of them.

        Reads windows of chunk indices (contiguous from 0) until one comes back empty, so
        documents of any size arrive whole and in order.
        """
        hits: list[SearchHit] = []
        low = start
        while limit is None or len(hits) < limit:
            window = models.FieldCondition(
                key=f"{METADATA_KEY}.chunk_index", range=models.Range(gte=low, lt=low + _CHUNK_WINDOW)
            )
            with self.guard(f"reading chunks from {kb!r}"):
                points, _ = self.client.scroll(
                    kb, scroll_filter=_doc_filter([doc_id], window), limit=_CHUNK_WINDOW, with_vectors=False
                )
            if not points:
                break
            hits += sorted((_hit(p.payload, 1.0) for p in points), key=lambda h: h.chunk_index)
            low += _CHUNK_WINDOW
        return hits if limit is None else hits[:limit]

    # Search

    def search(
        self,
        kb: str,
        query: str,
        *,
        k: int = 4,
        score_threshold: float | None = None,
        mode: str | None = None,
    ) -> list[SearchHit]:
        """Search the finished documents of a knowledge base.

        `mode` is dense (embedding similarity), sparse (BM25 keywords) or hybrid (both, fused by
        reciprocal rank); None uses the knowledge base's own, and one without a keyword index
        searches dense. `score_threshold` bounds the dense similarity (in hybrid, the dense
        candidates); keyword scores are unbounded and not thresholded. Scores are cosine (dense),
        BM25 (sparse) or the fused reciprocal-rank score (hybrid).

        Chunks outside the manifest (an ingest in progress, or one that crashed) must never be
        returned. They are rare, and a filter over document ids is slow in local mode (it is
        checked point by point), so the search runs unfiltered and is repeated with the filter
        only when such a chunk made it into the results.
        """
        handle = self.open_kb(kb)
        info, embedder = handle.info, handle.embedder
        run_mode = info.mode_for(mode)
        committed = {r.doc_id for r in self.list_documents(kb)}
        if not committed or not query.strip():
            return []
        dense = unit_vectors([embedder.embeddings.embed_query(query)])[0] if run_mode != "sparse" else None
        keywords = sparse.query_vector(query, info.analyser) if run_mode != "dense" and info.analyser else None
        if keywords is not None and not keywords.indices:
            if run_mode == "sparse":
                return []
            keywords, run_mode = None, "dense"  # only stop words: nothing for the keyword side
        q = search.Query(kb, info.dense_vector or None, run_mode, dense, keywords, k, score_threshold)
        with self.guard(f"searching {kb!r}"):
            if self.in_process_keywords and keywords is not None:
                return search.query_in_process(self.client, q, self._keyword_index(handle), committed)
            found = search.query(self.client, q, None)
            if any(h.doc_id not in committed for h in found):
                found = search.query(self.client, q, _doc_filter(sorted(committed)))
        return found

    def _keyword_index(self, handle: KbHandle) -> sparse.KeywordIndex:
        """The knowledge base's keyword index, read from its stored keyword vectors once after each write."""
        if handle.keywords is None:
            handle.keywords = search.keyword_index(self.client, handle.info.name)
        return handle.keywords

    def _written(self, kb: str) -> None:
        """Chunks were stored or deleted: the in-process keyword index is read again on the next search."""
        if (handle := self._handles.get(kb)) is not None:
            handle.keywords = None
