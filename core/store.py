"""Knowledge bases in Qdrant: one collection each, plus a manifest of finished documents.

A knowledge base's collection records, in its metadata, the embedding model and dimension
it was built with. Documents become visible only through the manifest collection, whose
entry is written after every chunk is stored, so search never sees half a document.
The same code serves Qdrant local mode and a Qdrant server.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException

from core.config import Settings
from core.documents import Chunk
from core.embeddings import EmbeddingModel
from core.errors import (
    EmbeddingMismatchError,
    KnowledgeBaseError,
    StoreError,
    StoreLockedError,
    StoreUnavailableError,
)
from core.files import now_iso

log = logging.getLogger(__name__)

MANIFEST = "ragtune_manifest"
_MARKER = "ragtune"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
_MANIFEST_NS = uuid.UUID("8f7b0c1e-4c1a-5e8e-9a57-2a1d2e6b9c41")
CONTENT_KEY = QdrantVectorStore.CONTENT_KEY
METADATA_KEY = QdrantVectorStore.METADATA_KEY


@dataclass(frozen=True)
class KnowledgeBase:
    name: str
    embedding_model: str
    dimension: int
    chunk_size: int
    chunk_overlap: int
    created: str


@dataclass(frozen=True)
class DocumentRecord:
    """A finished document: the manifest entry written after all of its chunks."""

    kb: str
    doc_id: str
    filename: str
    kind: str
    pages: int
    chunks: int
    size_bytes: int
    added: str
    encoding: str | None = None


@dataclass(frozen=True)
class SearchHit:
    text: str
    score: float
    doc_id: str
    filename: str
    page: int
    chunk_index: int
    heading: str | None


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


def check_kb_name(name: str) -> str:
    """Knowledge-base names become collection names: keep them plain."""
    name = (name or "").strip()
    if not _NAME.match(name) or name.startswith(MANIFEST):
        raise KnowledgeBaseError(
            f"{name!r} is not a valid knowledge-base name; use 1-48 letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )
    return name


def _kb_filter(kb: str, **fields: Any) -> models.Filter:
    conditions = [models.FieldCondition(key="kb", match=models.MatchValue(value=kb))]
    conditions += [models.FieldCondition(key=k, match=models.MatchValue(value=v)) for k, v in fields.items()]
    return models.Filter(must=list(conditions))


def _doc_filter(doc_ids: Sequence[str]) -> models.Filter:
    return models.Filter(
        must=[models.FieldCondition(key=f"{METADATA_KEY}.doc_id", match=models.MatchAny(any=list(doc_ids)))]
    )


class Store:
    """Knowledge bases, their documents and search, over one Qdrant client.

    Qdrant local mode is not safe for concurrent writers, so every call takes one lock;
    Streamlit sessions share a Store through `st.cache_resource`.
    """

    def __init__(self, client: QdrantClient, embedder: EmbeddingModel, *, server: bool = False) -> None:
        self.client = client
        self.embedder = embedder
        self.server = server
        self._lock = threading.RLock()
        self._ensure_manifest()

    @classmethod
    def open(cls, settings: Settings, embedder: EmbeddingModel) -> Store:
        return cls(open_client(settings), embedder, server=bool(settings.qdrant_url))

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
            except (StoreError, EmbeddingMismatchError):
                raise
            except (httpx.TransportError, ResponseHandlingException) as e:
                raise StoreUnavailableError(f"Qdrant stopped answering while {action} ({e}).") from e
            except Exception as e:
                raise StoreError(f"Qdrant failed while {action}: {e}") from e

    def _ensure_manifest(self) -> None:
        with self._guard("preparing the manifest"):
            if not self.client.collection_exists(MANIFEST):
                self.client.create_collection(MANIFEST, vectors_config={})
                if self.server:
                    for key in ("kb", "doc_id", "filename"):
                        self.client.create_payload_index(MANIFEST, key, models.PayloadSchemaType.KEYWORD)

    # Knowledge bases

    def list_kbs(self) -> list[KnowledgeBase]:
        with self._guard("listing knowledge bases"):
            names = sorted(c.name for c in self.client.get_collections().collections)
            kbs = [self._read_kb(n) for n in names if n != MANIFEST]
        return [kb for kb in kbs if kb is not None]

    def _read_kb(self, name: str) -> KnowledgeBase | None:
        meta = (self.client.get_collection(name).config.metadata or {}).get(_MARKER)
        if not isinstance(meta, dict):
            return None  # a collection this app did not create
        return KnowledgeBase(name=name, **meta)

    def get_kb(self, name: str) -> KnowledgeBase:
        with self._guard(f"opening knowledge base {name!r}"):
            kb = self._read_kb(name) if self.client.collection_exists(name) else None
        if kb is None:
            raise KnowledgeBaseError(f"Knowledge base {name!r} does not exist; create it first.")
        return kb

    def create_kb(self, name: str, *, chunk_size: int, chunk_overlap: int) -> KnowledgeBase:
        name = check_kb_name(name)
        if chunk_overlap >= chunk_size:
            raise KnowledgeBaseError(f"Chunk overlap ({chunk_overlap}) must be smaller than chunk size ({chunk_size}).")
        kb = KnowledgeBase(
            name=name,
            embedding_model=self.embedder.name,
            dimension=self.embedder.dimension,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            created=now_iso(),
        )
        with self._guard(f"creating knowledge base {name!r}"):
            if self.client.collection_exists(name):
                raise KnowledgeBaseError(f"Knowledge base {name!r} already exists; pick another name.")
            meta = {k: v for k, v in asdict(kb).items() if k != "name"}
            self.client.create_collection(
                name,
                vectors_config=models.VectorParams(size=kb.dimension, distance=models.Distance.COSINE),
                metadata={_MARKER: meta},
            )
            if self.server:
                for key in ("doc_id", "filename"):
                    self.client.create_payload_index(name, f"{METADATA_KEY}.{key}", models.PayloadSchemaType.KEYWORD)
        return kb

    def delete_kb(self, name: str) -> None:
        self.get_kb(name)
        with self._guard(f"deleting knowledge base {name!r}"):
            self.client.delete(MANIFEST, points_selector=models.FilterSelector(filter=_kb_filter(name)))
            self.client.delete_collection(name)

    def require_kb(self, name: str) -> KnowledgeBase:
        """The knowledge base, refused if it was built with another embedding model."""
        kb = self.get_kb(name)
        if kb.embedding_model != self.embedder.name or kb.dimension != self.embedder.dimension:
            raise EmbeddingMismatchError(
                f"Knowledge base {name!r} was built with {kb.embedding_model} ({kb.dimension} dims) but the "
                f"app is using {self.embedder.name} ({self.embedder.dimension} dims). Switch back to "
                f"{kb.embedding_model}, or create a new knowledge base and upload the documents again."
            )
        return kb

    def vectorstore(self, name: str) -> QdrantVectorStore:
        """A LangChain vector store over the knowledge base (checked against the embedder)."""
        self.require_kb(name)
        return QdrantVectorStore(
            client=self.client,
            collection_name=name,
            embedding=self.embedder.embeddings,
            validate_collection_config=False,
        )

    # Documents

    def list_documents(self, kb: str) -> list[DocumentRecord]:
        with self._guard(f"listing documents of {kb!r}"):
            records = self._scroll_manifest(_kb_filter(kb))
        return sorted(records, key=lambda r: (r.filename.lower(), r.added))

    def _scroll_manifest(self, flt: models.Filter) -> list[DocumentRecord]:
        records: list[DocumentRecord] = []
        offset = None
        while True:
            points, offset = self.client.scroll(MANIFEST, scroll_filter=flt, limit=256, offset=offset)
            records += [DocumentRecord(**(p.payload or {})) for p in points]
            if offset is None:
                return records

    def find_document(
        self, kb: str, *, doc_id: str | None = None, filename: str | None = None
    ) -> DocumentRecord | None:
        fields = {k: v for k, v in {"doc_id": doc_id, "filename": filename}.items() if v is not None}
        with self._guard("looking up a document"):
            found = self._scroll_manifest(_kb_filter(kb, **fields))
        return found[0] if found else None

    def upsert_chunks(self, kb: str, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        """Store embedded chunks; not searchable until `commit` names their document."""
        kb_info = self.require_kb(kb)
        if any(len(v) != kb_info.dimension for v in vectors):
            raise EmbeddingMismatchError(f"Vectors for {kb!r} must have {kb_info.dimension} dimensions.")
        points = [
            models.PointStruct(id=c.point_id, vector=list(v), payload={CONTENT_KEY: c.text, METADATA_KEY: c.metadata()})
            for c, v in zip(chunks, vectors, strict=True)
        ]
        for start in range(0, len(points), 256):
            with self._guard(f"storing chunks in {kb!r}"):
                self.client.upsert(kb, points=points[start : start + 256])

    def commit(self, record: DocumentRecord) -> None:
        """Write the manifest entry that makes a document searchable."""
        with self._guard(f"recording {record.filename}"):
            self.client.upsert(
                MANIFEST,
                points=[
                    models.PointStruct(
                        id=self._manifest_id(record.kb, record.doc_id), vector={}, payload=asdict(record)
                    )
                ],
            )

    def delete_document(self, kb: str, doc_id: str) -> None:
        """Hide the document first (manifest), then drop its chunks."""
        with self._guard(f"deleting a document from {kb!r}"):
            self.client.delete(MANIFEST, points_selector=[self._manifest_id(kb, doc_id)])
            self.delete_chunks(kb, doc_id)

    def delete_chunks(self, kb: str, doc_id: str) -> None:
        with self._guard(f"deleting chunks from {kb!r}"):
            self.client.delete(kb, points_selector=models.FilterSelector(filter=_doc_filter([doc_id])))

    def count_chunks(self, kb: str, doc_id: str | None = None) -> int:
        with self._guard(f"counting chunks in {kb!r}"):
            flt = _doc_filter([doc_id]) if doc_id else None
            return int(self.client.count(kb, count_filter=flt, exact=True).count)

    def chunks_of(self, kb: str, doc_id: str, *, limit: int = 1000) -> list[SearchHit]:
        """A document's chunks in reading order (for the chunk browser)."""
        with self._guard(f"reading chunks from {kb!r}"):
            points, _ = self.client.scroll(kb, scroll_filter=_doc_filter([doc_id]), limit=limit)
        hits = [
            self._hit(str((p.payload or {}).get(CONTENT_KEY, "")), (p.payload or {}).get(METADATA_KEY), 1.0)
            for p in points
        ]
        return sorted(hits, key=lambda h: h.chunk_index)

    @staticmethod
    def _manifest_id(kb: str, doc_id: str) -> str:
        return str(uuid.uuid5(_MANIFEST_NS, f"{kb}/{doc_id}"))

    # Search

    def search(self, kb: str, query: str, *, k: int = 4, score_threshold: float | None = None) -> list[SearchHit]:
        """Similarity search over the finished documents of a knowledge base.

        Chunks outside the manifest (an ingest in progress, or one that crashed) must never be
        returned. They are rare, and a filter over document ids is slow in local mode (it is
        checked point by point), so the search runs unfiltered and is repeated with the filter
        only when such a chunk made it into the results.
        """
        vs = self.vectorstore(kb)
        committed = {r.doc_id for r in self.list_documents(kb)}
        if not committed or not query.strip():
            return []
        vector = self.embedder.embeddings.embed_query(query)
        with self._guard(f"searching {kb!r}"):
            found = vs.similarity_search_with_score_by_vector(vector, k=k, score_threshold=score_threshold)
            if any(doc.metadata.get("doc_id") not in committed for doc, _ in found):
                found = vs.similarity_search_with_score_by_vector(
                    vector, k=k, filter=_doc_filter(sorted(committed)), score_threshold=score_threshold
                )
        return [self._hit(doc.page_content, doc.metadata, score) for doc, score in found]

    @staticmethod
    def _hit(text: str, metadata: dict[str, Any] | None, score: float) -> SearchHit:
        meta = metadata or {}
        return SearchHit(
            text=text,
            score=float(score),
            doc_id=str(meta.get("doc_id", "")),
            filename=str(meta.get("filename", "")),
            page=int(meta.get("page", 0)),
            chunk_index=int(meta.get("chunk_index", 0)),
            heading=meta.get("heading"),
        )
