"""What a knowledge base records (model, dimension, chunking, keyword analyser), and an open one's handle."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

from core import sparse
from core.embeddings import EmbeddingCatalog, EmbeddingModel
from core.errors import EmbeddingError, EmbeddingMismatchError, KnowledgeBaseError
from core.manifest import MANIFEST

RetrievalMode = Literal["dense", "sparse", "hybrid"]
RETRIEVAL_MODES: tuple[RetrievalMode, ...] = get_args(RetrievalMode)
# By measurement (bench/retrieval.py): on both sample sets hybrid beats dense with every model (English
# hit@1 with MiniLM 77.5% -> 92.5%); the RAG preset's answers on the 40 English questions: 15 right vs 14.
DEFAULT_MODE: RetrievalMode = "hybrid"

MARKER = "ragtune"  # the collection metadata's key for what the knowledge base records
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
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

    @classmethod
    def from_metadata(cls, name: str, metadata: dict[str, Any] | None) -> KnowledgeBase | None:
        """What a collection's metadata records; None for a collection this app did not create."""
        meta = (metadata or {}).get(MARKER)
        if not isinstance(meta, dict):
            return None
        return cls(name=name, **{k: v for k, v in meta.items() if k in _FIELDS})

    def metadata(self) -> dict[str, Any]:
        """The collection metadata that records this knowledge base (its name is the collection's)."""
        return {MARKER: {k: v for k, v in asdict(self).items() if k != "name"}}

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


_FIELDS = {f.name for f in fields(KnowledgeBase)}


@dataclass
class KbHandle:
    """An open knowledge base: what it records and the model that embeds it, worked out once, not per search.

    `keywords` is the in-process keyword index (Qdrant local mode), read from the stored keyword
    vectors on the first keyword search after a write.
    """

    info: KnowledgeBase
    embedder: EmbeddingModel
    keywords: sparse.KeywordIndex | None = None

    @property
    def analyser(self) -> str | None:
        return self.info.analyser


def check_kb_name(name: str) -> str:
    """Knowledge-base names become collection names: keep them plain."""
    name = (name or "").strip()
    if not _NAME.match(name) or name.startswith(MANIFEST):
        raise KnowledgeBaseError(
            f"{name!r} is not a valid knowledge-base name; use 1-48 letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )
    return name


def embedder_for(kb: KnowledgeBase, default: EmbeddingModel, catalog: EmbeddingCatalog | None) -> EmbeddingModel:
    """The model that embeds this knowledge base's queries and chunks: the one it records (`default` or from `catalog`).

    Raises:
        EmbeddingMismatchError: that model cannot be loaded, or it gives another dimension.

    """
    model = default if kb.embedding_model == default.name else None
    if model is None and catalog is not None:
        try:
            model = catalog.get(kb.embedding_model)
        except EmbeddingError as e:
            raise EmbeddingMismatchError(
                f"Knowledge base {kb.name!r} was built with {kb.embedding_model} ({kb.dimension} dims), "
                f"which cannot be loaded now: {e}"
            ) from e
    if model is None or model.dimension != kb.dimension:
        using = model or default
        raise EmbeddingMismatchError(
            f"Knowledge base {kb.name!r} was built with {kb.embedding_model} ({kb.dimension} dims) but the "
            f"app is using {using.name} ({using.dimension} dims). Switch back to "
            f"{kb.embedding_model}, or create a new knowledge base and upload the documents again."
        )
    return model


def checked_settings(
    chunk_size: int, chunk_overlap: int, analyser: str | None, retrieval_mode: RetrievalMode | None
) -> tuple[str | None, RetrievalMode]:
    """A new knowledge base's analyser and retrieval mode (None: the default its analyser allows), checked.

    Raises:
        KnowledgeBaseError: the overlap is not below the chunk size, the analyser is unknown, or the mode
            needs a keyword index the knowledge base will not have.
    """
    if chunk_overlap >= chunk_size:
        raise KnowledgeBaseError(f"Chunk overlap ({chunk_overlap}) must be smaller than chunk size ({chunk_size}).")
    if analyser is not None and analyser not in sparse.ANALYSERS:
        raise KnowledgeBaseError(f"Unknown analyser {analyser!r}; pick one of {', '.join(sparse.ANALYSERS)}.")
    mode = retrieval_mode or (DEFAULT_MODE if analyser else "dense")
    if mode not in RETRIEVAL_MODES or (analyser is None and mode != "dense"):
        raise KnowledgeBaseError(f"Retrieval mode {mode!r} needs a keyword index; pick an analyser or 'dense'.")
    return analyser, mode
