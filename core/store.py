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
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, get_args

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
    StoreLockedError,
    StoreUnavailableError,
)
from core.files import now_iso
from core.manifest import MANIFEST, DocumentRecord, Manifest
from core.search import CONTENT_KEY, DENSE, METADATA_KEY, SPARSE, SearchHit
from core.search import doc_filter as _doc_filter
from core.search import hit as _hit
from core.text import is_cjk

__all__ = ["MANIFEST", "DocumentRecord", "KnowledgeBase", "RetrievalMode", "SearchHit", "Store", "open_client"]

log = logging.getLogger(__name__)

RetrievalMode = Literal["dense", "sparse", "hybrid"]
RETRIEVAL_MODES: tuple[RetrievalMode, ...] = get_args(RetrievalMode)
# By measurement (bench/retrieval.py): on both sample sets hybrid beats dense with every model (English
# hit@1 with MiniLM 77.5% -> 92.5%); the RAG preset's answers on the 40 English questions: 15 right vs 14.
DEFAULT_MODE: RetrievalMode = "hybrid"

_MARKER = "ragtune"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
_CHUNK_WINDOW = 256
# Knowledge bases a parameter sweep re-chunks into (core.evaluation.sweep): hidden from the pickers.
SCRATCH_PREFIX = "sweep--"


@dataclass(frozen=True)
class KnowledgeBase:
    name: str
    embedding_model: str
    dimension: int
    chunk_size: int
    chunk_overlap: int
    created: str
    # None: created before keyword search existed, dense only (re-ingest into a new one to add it).
    analyser: str | None = None
    retrieval_mode: str = "dense"
    # The named dense vector; "" is the unnamed vector of collections made before hybrid search.
    dense_vector: str = ""
    # Created without a chosen model (or analyser): the first documents ingested choose it (`Store.fit_kb`).
    auto_model: bool = False
    auto_analyser: bool = False

    @property
    def modes(self) -> tuple[RetrievalMode, ...]:
        return RETRIEVAL_MODES if self.analyser else ("dense",)

    def mode_for(self, mode: str | None) -> RetrievalMode:
        """The mode a search runs in: the one asked for if this knowledge base has it, else dense."""
        wanted = mode or self.retrieval_mode
        return wanted if wanted in self.modes else "dense"  # type: ignore[return-value]

    @property
    def upgrade_hint(self) -> str | None:
        """What to do for keyword search, when this knowledge base lacks its index."""
        if self.analyser:
            return None
        return (
            f"{self.name} has no keyword index (it was created before hybrid search), so it searches by "
            "meaning only. To add keyword and hybrid search, create a new knowledge base and upload the "
            "documents again."
        )


def open_client(settings: Settings) -> QdrantClient:
    """Connect to the configured Qdrant: a server if QDRANT_URL is set, else local mode.

    Raises:
        StoreLockedError: local storage is held by another process.
        StoreUnavailableError: the server does not answer.

    """
    if settings.qdrant_url:
        try:
            client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key, timeout=30)
            client.get_collections()
        except Exception as e:  # noqa: BLE001 - httpx, grpc and Qdrant errors alike
            raise StoreUnavailableError(
                f"Qdrant is not reachable at {settings.qdrant_url} ({e}); start the server, or unset "
                "QDRANT_URL to use local mode."
            ) from e
        return client
    path = settings.local_qdrant_path
    path.mkdir(parents=True, exist_ok=True)
    _one_blas_thread()
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as e:
        if "already accessed" in str(e):
            raise StoreLockedError(
                f"Qdrant local storage in {path} is in use by another process (is the app already "
                "running?). Stop that process, set QDRANT_PATH to another folder, or set QDRANT_URL "
                "to a Qdrant server for shared access."
            ) from e
        raise StoreError(f"Could not open Qdrant local storage in {path}: {e}") from e


def _one_blas_thread() -> None:
    """Run numpy's BLAS on one thread in this process: local mode's search is one matrix-vector product.

    Scoring every stored vector is memory-bound, so a second thread gains little on a quiet machine,
    and on a busy one OpenBLAS's threads wait for each other (10,000 x 384 at load 6 on 2 cores: about
    1 ms on one thread, 16 ms on two; `Store.search` dense 16-20 ms -> 8-10 ms). Torch (embeddings,
    training) has its own thread pool and keeps it.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")  # applied now, kept for the process (not used as a context)


def check_kb_name(name: str) -> str:
    """Knowledge-base names become collection names: keep them plain."""
    name = (name or "").strip()
    if not _NAME.match(name) or name.startswith(MANIFEST):
        raise KnowledgeBaseError(
            f"{name!r} is not a valid knowledge-base name; use 1-48 letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )
    return name


_KB_FIELDS = {f.name for f in fields(KnowledgeBase)}


def _unit(vectors: Sequence[Sequence[float]]) -> list[list[float]]:
    """Vectors scaled to unit length (zero vectors stay zero): dot product becomes cosine."""
    import numpy as np

    if not vectors:
        return []
    array = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), -1)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    unit: list[list[float]] = (array / np.where(norms == 0, 1.0, norms)).tolist()
    return unit


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
        self.embedder = embedder
        self.catalog = catalog
        self.server = server
        self._lock = threading.RLock()
        # Local mode scores sparse vectors point by point in Python; a server has its own inverted index.
        self.in_process_keywords = not server
        self._keyword_indexes: dict[str, sparse.KeywordIndex] = {}
        with self._guard("preparing the manifest"):
            self.manifest = Manifest(client, server=server)

    @classmethod
    def open(cls, settings: Settings, embedder: EmbeddingModel, catalog: EmbeddingCatalog | None = None) -> Store:
        return cls(open_client(settings), embedder, server=bool(settings.qdrant_url), catalog=catalog)

    def close(self) -> None:
        with self._lock:
            self.client.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Serialize access and translate client errors into StoreError."""
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
        with self._guard("listing knowledge bases"):
            names = sorted(c.name for c in self.client.get_collections().collections)
            kbs = [self._read_kb(n) for n in names if n != MANIFEST and (scratch or not n.startswith(SCRATCH_PREFIX))]
        return [kb for kb in kbs if kb is not None]

    def _read_kb(self, name: str) -> KnowledgeBase | None:
        meta = (self.client.get_collection(name).config.metadata or {}).get(_MARKER)
        if not isinstance(meta, dict):
            return None  # a collection this app did not create
        return KnowledgeBase(name=name, **{k: v for k, v in meta.items() if k in _KB_FIELDS})

    def get_kb(self, name: str) -> KnowledgeBase:
        with self._guard(f"opening knowledge base {name!r}"):
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
        if chunk_overlap >= chunk_size:
            raise KnowledgeBaseError(f"Chunk overlap ({chunk_overlap}) must be smaller than chunk size ({chunk_size}).")
        fit = lang.fit(language)
        auto_model, auto_analyser = embedding_model is None, analyser == lang.AUTO
        analyser = fit.analyser if analyser == lang.AUTO else analyser
        if analyser is not None and analyser not in sparse.ANALYSERS:
            raise KnowledgeBaseError(f"Unknown analyser {analyser!r}; pick one of {', '.join(sparse.ANALYSERS)}.")
        mode = retrieval_mode or (DEFAULT_MODE if analyser else "dense")
        if mode not in RETRIEVAL_MODES or (analyser is None and mode != "dense"):
            raise KnowledgeBaseError(f"Retrieval mode {mode!r} needs a keyword index; pick an analyser or 'dense'.")
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
        with self._guard(f"creating knowledge base {name!r}"):
            if self.client.collection_exists(name):
                raise KnowledgeBaseError(f"Knowledge base {name!r} already exists; pick another name.")
            sparse_config = {SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)} if analyser else None
            self.client.create_collection(
                name,
                # Vectors are stored unit length (`_unit`), so dot product is cosine; Qdrant local mode
                # re-normalizes every stored vector on each cosine query (10k chunks, busy machine: 83 -> 35 ms).
                vectors_config={DENSE: models.VectorParams(size=kb.dimension, distance=models.Distance.DOT)},
                sparse_vectors_config=sparse_config,
                metadata={_MARKER: {k: v for k, v in asdict(kb).items() if k != "name"}},
            )
            if self.server:
                for key in ("doc_id", "filename"):
                    self.client.create_payload_index(name, f"{METADATA_KEY}.{key}", models.PayloadSchemaType.KEYWORD)
                self.client.create_payload_index(name, f"{METADATA_KEY}.chunk_index", models.PayloadSchemaType.INTEGER)
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
            with self._guard(f"fitting knowledge base {name!r}"):
                meta = {k: v for k, v in asdict(fitted).items() if k != "name"}
                self.client.update_collection(name, metadata={_MARKER: meta})
            return fitted
        mode: RetrievalMode = kb.mode_for(None) if analyser else "dense"
        with self._guard(f"fitting knowledge base {name!r}"):
            self.client.delete_collection(name)
            self._keyword_indexes.pop(name, None)
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
        with self._guard(f"deleting knowledge base {name!r}"):
            self.manifest.remove_kb(name)
            self.client.delete_collection(name)
            self._keyword_indexes.pop(name, None)

    def copy_kb(self, source: str, target: str, *, embedding_model: str) -> KnowledgeBase:
        """A new knowledge base with the finished documents of `source`, re-embedded with another model.

        Same chunks (ids, text, metadata), chunking, analyser and mode; documents are committed
        one by one after their chunks, as in ingest.
        """
        src = self.require_kb(source)
        kb = self.create_kb(
            target,
            chunk_size=src.chunk_size,
            chunk_overlap=src.chunk_overlap,
            embedding_model=embedding_model,
            analyser=src.analyser,
            retrieval_mode=src.retrieval_mode if src.analyser else None,  # type: ignore[arg-type]
        )
        embeddings = self.embedder_for(kb).embeddings
        for record in self.list_documents(source):
            with self._guard(f"reading chunks from {source!r}"):
                points, _ = self.client.scroll(
                    source, scroll_filter=_doc_filter([record.doc_id]), limit=record.chunks + 1
                )
            texts = [str((p.payload or {}).get(CONTENT_KEY, "")) for p in points]
            vectors = _unit(embeddings.embed_documents(texts))
            keywords = sparse.document_vectors(texts, kb.analyser) if kb.analyser else None
            copies = []
            for i, (p, vector) in enumerate(zip(points, vectors, strict=True)):
                named: dict[str, Any] = {DENSE: vector}
                if keywords is not None:
                    named[SPARSE] = models.SparseVector(indices=keywords[i].indices, values=keywords[i].values)
                copies.append(models.PointStruct(id=p.id, vector=named, payload=p.payload))
            for start in range(0, len(copies), 256):
                with self._guard(f"storing chunks in {target!r}"):
                    self._keyword_indexes.pop(target, None)
                    self.client.upsert(target, points=copies[start : start + 256])
            self.commit(replace(record, kb=target))
        return kb

    def _load(self, model_name: str) -> EmbeddingModel:
        if self.catalog is None:
            raise EmbeddingError(f"Embedding model {model_name!r} is not available here; only {self.embedder.name} is.")
        return self.catalog.get(model_name)

    def embedder_for(self, kb: KnowledgeBase) -> EmbeddingModel:
        """The model that embeds this knowledge base's queries and chunks: the one it records.

        Raises:
            EmbeddingMismatchError: that model cannot be loaded, or it gives another dimension.

        """
        model = self.embedder if kb.embedding_model == self.embedder.name else None
        if model is None and self.catalog is not None:
            try:
                model = self.catalog.get(kb.embedding_model)
            except EmbeddingError as e:
                raise EmbeddingMismatchError(
                    f"Knowledge base {kb.name!r} was built with {kb.embedding_model} ({kb.dimension} dims), "
                    f"which cannot be loaded now: {e}"
                ) from e
        if model is None or model.dimension != kb.dimension:
            using = model or self.embedder
            raise EmbeddingMismatchError(
                f"Knowledge base {kb.name!r} was built with {kb.embedding_model} ({kb.dimension} dims) but the "
                f"app is using {using.name} ({using.dimension} dims). Switch back to "
                f"{kb.embedding_model}, or create a new knowledge base and upload the documents again."
            )
        return model

    def require_kb(self, name: str) -> KnowledgeBase:
        """The knowledge base, refused if its embedding model is not available."""
        kb = self.get_kb(name)
        self.embedder_for(kb)
        return kb

    def is_chinese(self, name: str) -> bool:
        """Whether the knowledge base holds Chinese text: jieba's analyser, a Chinese document, or CJK first chunks.

        The first chunks are read only for documents added before their language was recorded.
        """
        kb = self.get_kb(name)
        if kb.analyser == "chinese":
            return True
        docs = self.list_documents(name)
        if any(d.language in ("zh", "mixed") for d in docs):
            return True
        texts = [h.text for d in docs[:3] if d.language is None for h in self.chunks_of(name, d.doc_id, limit=2)]
        return is_cjk(" ".join(texts))

    # Documents

    def list_documents(self, kb: str) -> list[DocumentRecord]:
        with self._guard(f"listing documents of {kb!r}"):
            records = self.manifest.find(kb)
        return sorted(records, key=lambda r: (r.filename.lower(), r.added))

    def find_document(
        self, kb: str, *, doc_id: str | None = None, filename: str | None = None
    ) -> DocumentRecord | None:
        with self._guard("looking up a document"):
            found = self.manifest.find(kb, doc_id=doc_id, filename=filename)
        return found[0] if found else None

    def upsert_chunks(self, kb: str, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        """Store embedded chunks (and their keyword vectors); not searchable until `commit` names their document."""
        info = self.require_kb(kb)
        if any(len(v) != info.dimension for v in vectors):
            raise EmbeddingMismatchError(f"Vectors for {kb!r} must have {info.dimension} dimensions.")
        keywords = sparse.document_vectors([c.text for c in chunks], info.analyser) if info.analyser else None
        points = []
        for i, (chunk, vector) in enumerate(zip(chunks, _unit(vectors), strict=True)):
            payload = {CONTENT_KEY: chunk.text, METADATA_KEY: chunk.metadata()}
            point_vector: Any = list(vector)
            if info.dense_vector:
                point_vector = {info.dense_vector: point_vector}
            if keywords is not None:
                point_vector[SPARSE] = models.SparseVector(indices=keywords[i].indices, values=keywords[i].values)
            points.append(models.PointStruct(id=chunk.point_id, vector=point_vector, payload=payload))
        for start in range(0, len(points), 256):
            with self._guard(f"storing chunks in {kb!r}"):
                self._keyword_indexes.pop(kb, None)
                self.client.upsert(kb, points=points[start : start + 256])

    def upsert_points(self, kb: str, points: Sequence[models.PointStruct]) -> None:
        """Store points as exported from another store (`core.kb_transfer`): vectors as they are, no embedding."""
        with self._guard(f"storing chunks in {kb!r}"):
            self._keyword_indexes.pop(kb, None)
            self.client.upsert(kb, points=list(points))

    def get_point(self, kb: str, doc_id: str, chunk_index: int) -> models.Record | None:
        """One chunk's point as stored: payload and every vector (to be put back by `upsert_points`)."""
        with self._guard(f"reading a chunk of {kb!r}"):
            ids = [chunk_point_id(doc_id, chunk_index)]
            found = self.client.retrieve(kb, ids, with_payload=True, with_vectors=True)
        return found[0] if found else None

    def commit(self, record: DocumentRecord) -> None:
        """Write the manifest entry that makes a document searchable."""
        with self._guard(f"recording {record.filename}"):
            self.manifest.write(record)

    def delete_document(self, kb: str, doc_id: str) -> None:
        """Hide the document first (manifest), then drop its chunks."""
        with self._guard(f"deleting a document from {kb!r}"):
            self.manifest.remove(kb, doc_id)
            self.delete_chunks(kb, doc_id)

    def delete_chunks(self, kb: str, doc_id: str) -> None:
        with self._guard(f"deleting chunks from {kb!r}"):
            self._keyword_indexes.pop(kb, None)
            self.client.delete(kb, points_selector=models.FilterSelector(filter=_doc_filter([doc_id])))

    def remove_unfinished_chunks(self, kb: str) -> int:
        """Delete the chunks that no manifest entry names (a process killed between storing and committing).

        Never call while an ingest into `kb` runs: its chunks are not committed yet. Returns how many went.
        """
        committed = {r.doc_id for r in self.list_documents(kb)}
        selector = models.PayloadSelectorInclude(include=[f"{METADATA_KEY}.doc_id"])
        stray: dict[str, int] = {}
        offset = None
        while True:
            with self._guard(f"checking the chunks of {kb!r}"):
                points, offset = self.client.scroll(kb, limit=1024, offset=offset, with_payload=selector)
            for p in points:
                doc_id = ((p.payload or {}).get(METADATA_KEY) or {}).get("doc_id")
                if isinstance(doc_id, str) and doc_id not in committed:
                    stray[doc_id] = stray.get(doc_id, 0) + 1
            if offset is None:
                break
        for doc_id in stray:
            self.delete_chunks(kb, doc_id)
        return sum(stray.values())

    def count_chunks(self, kb: str, doc_id: str | None = None) -> int:
        with self._guard(f"counting chunks in {kb!r}"):
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
            with self._guard(f"reading chunks from {kb!r}"):
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
        info = self.get_kb(kb)
        embedder = self.embedder_for(info)
        run_mode = info.mode_for(mode)
        committed = {r.doc_id for r in self.list_documents(kb)}
        if not committed or not query.strip():
            return []
        dense = _unit([embedder.embeddings.embed_query(query)])[0] if run_mode != "sparse" else None
        keywords = sparse.query_vector(query, info.analyser) if run_mode != "dense" and info.analyser else None
        if keywords is not None and not keywords.indices:
            if run_mode == "sparse":
                return []
            keywords, run_mode = None, "dense"  # only stop words: nothing for the keyword side
        q = search.Query(kb, info.dense_vector or None, run_mode, dense, keywords, k, score_threshold)
        with self._guard(f"searching {kb!r}"):
            if self.in_process_keywords and keywords is not None:
                return search.query_in_process(self.client, q, self._keyword_index(kb), committed)
            found = search.query(self.client, q, None)
            if any(h.doc_id not in committed for h in found):
                found = search.query(self.client, q, _doc_filter(sorted(committed)))
        return found

    def _keyword_index(self, kb: str) -> sparse.KeywordIndex:
        """The knowledge base's keyword index, read from its stored keyword vectors once after each write."""
        index = self._keyword_indexes.get(kb)
        if index is None:
            index = self._keyword_indexes[kb] = search.keyword_index(self.client, kb)
        return index
