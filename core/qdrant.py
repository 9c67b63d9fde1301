"""The Qdrant client the configuration names: a server (QDRANT_URL) or local mode, its errors translated."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qdrant_client import QdrantClient, models

from core.config import Settings
from core.errors import StoreError, StoreLockedError, StoreUnavailableError
from core.search import DENSE, METADATA_KEY, SPARSE

if TYPE_CHECKING:
    from core.knowledge_base import KnowledgeBase


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


def create_collection(client: QdrantClient, kb: KnowledgeBase, *, server: bool) -> None:
    """The collection of a new knowledge base: its dense vector, its keyword vector, payload indexes on a server."""
    sparse_config = {SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)} if kb.analyser else None
    client.create_collection(
        kb.name,
        # Vectors are stored unit length (`search.unit_vectors`), so dot product is cosine; Qdrant local mode
        # re-normalizes every stored vector on each cosine query (10k chunks, busy machine: 83 -> 35 ms).
        vectors_config={DENSE: models.VectorParams(size=kb.dimension, distance=models.Distance.DOT)},
        sparse_vectors_config=sparse_config,
        metadata=kb.metadata(),
    )
    if server:
        for key in ("doc_id", "filename"):
            client.create_payload_index(kb.name, f"{METADATA_KEY}.{key}", models.PayloadSchemaType.KEYWORD)
        client.create_payload_index(kb.name, f"{METADATA_KEY}.chunk_index", models.PayloadSchemaType.INTEGER)
