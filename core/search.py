"""How a knowledge base's collection is searched: Qdrant's Query API, and keywords scored in this process.

`Store.search` decides what to ask (which mode, which documents are finished) and calls these. On a
Qdrant server everything goes to the Query API: dense, sparse, or both fused (`query`). Qdrant's
local mode scans every sparse vector on each keyword query, so there the keyword side is scored by a
`sparse.KeywordIndex` read once from the stored vectors (`keyword_index`), and fused with the dense
side as Qdrant fuses (`query_in_process`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient, models
from qdrant_client.hybrid.fusion import distribution_based_score_fusion

from core import sparse

DENSE = "dense"
SPARSE = "keywords"
# How many candidates each side hands to the fusion; fusion needs more than k to reorder them.
PREFETCH = 20
# Distribution-based score fusion: each side's scores normalised by their spread, then summed. On the
# sample sets it beat reciprocal-rank fusion (bench/retrieval.py: English hit@1 with MiniLM 87.5% -> 92.5%).
FUSION = models.Fusion.DBSF
CONTENT_KEY = QdrantVectorStore.CONTENT_KEY
METADATA_KEY = QdrantVectorStore.METADATA_KEY


@dataclass(frozen=True)
class SearchHit:
    text: str
    score: float
    doc_id: str
    filename: str
    page: int
    chunk_index: int
    heading: str | None


def hit(payload: dict[str, Any] | None, score: float) -> SearchHit:
    """A stored point's payload as a search hit."""
    payload = payload or {}
    meta = payload.get(METADATA_KEY) or {}
    return SearchHit(
        text=str(payload.get(CONTENT_KEY, "")),
        score=float(score),
        doc_id=str(meta.get("doc_id", "")),
        filename=str(meta.get("filename", "")),
        page=int(meta.get("page", 0)),
        chunk_index=int(meta.get("chunk_index", 0)),
        heading=meta.get("heading"),
    )


def doc_filter(doc_ids: Sequence[str], *extra: models.Condition) -> models.Filter:
    """Only the chunks of these documents (and whatever `extra` asks)."""
    condition = models.FieldCondition(key=f"{METADATA_KEY}.doc_id", match=models.MatchAny(any=list(doc_ids)))
    return models.Filter(must=[condition, *extra])


@dataclass(frozen=True)
class Query:
    """One search of one collection: its vectors, mode (dense, sparse, hybrid), k and dense score bound."""

    collection: str
    using: str | None  # the dense vector's name (None: the collection's unnamed one)
    mode: str
    dense: list[float] | None
    keywords: sparse.SparseVector | None
    k: int
    score_threshold: float | None = None


def query(client: QdrantClient, q: Query, flt: models.Filter | None) -> list[SearchHit]:
    """The search through Qdrant's Query API (dense, sparse, or both fused), within `flt`."""
    kw = models.SparseVector(indices=q.keywords.indices, values=q.keywords.values) if q.keywords else None
    if q.mode == "dense" or kw is None:
        response = client.query_points(
            q.collection, query=q.dense, using=q.using, limit=q.k, score_threshold=q.score_threshold, query_filter=flt
        )
    elif q.mode == "sparse" or q.dense is None:
        response = client.query_points(q.collection, query=kw, using=SPARSE, limit=q.k, query_filter=flt)
    else:
        depth = max(PREFETCH, q.k)
        response = client.query_points(
            q.collection,
            prefetch=[
                models.Prefetch(
                    query=q.dense, using=q.using, limit=depth, score_threshold=q.score_threshold, filter=flt
                ),
                models.Prefetch(query=kw, using=SPARSE, limit=depth, filter=flt),
            ],
            query=models.FusionQuery(fusion=FUSION),
            limit=q.k,
        )
    return [hit(p.payload, p.score) for p in response.points]


def query_in_process(client: QdrantClient, q: Query, index: sparse.KeywordIndex, committed: set[str]
                     ) -> list[SearchHit]:  # fmt: skip
    """Keyword or hybrid search with the keywords scored by `index`, fused as Qdrant fuses; finished documents only."""
    assert q.keywords is not None
    depth = max(PREFETCH, q.k) if q.mode == "hybrid" else q.k
    keyword_points = [
        models.ScoredPoint(id=point_id, version=0, score=score)
        for point_id, score in index.search(q.keywords, depth, committed)
    ]
    if q.mode == "sparse" or q.dense is None:
        fused = keyword_points
    else:

        def dense_side(flt: models.Filter | None) -> list[models.ScoredPoint]:
            return client.query_points(
                q.collection, query=q.dense, using=q.using, limit=depth, score_threshold=q.score_threshold,
                query_filter=flt,
            ).points  # fmt: skip

        dense_points = dense_side(None)
        if any(hit(p.payload, 0).doc_id not in committed for p in dense_points):
            dense_points = dense_side(doc_filter(sorted(committed)))
        fused = distribution_based_score_fusion([dense_points, keyword_points], limit=q.k)
    missing = [p.id for p in fused if p.payload is None]
    payloads = {str(r.id): r.payload for r in client.retrieve(q.collection, missing)} if missing else {}
    return [hit(p.payload if p.payload is not None else payloads.get(str(p.id)), p.score) for p in fused]


def keyword_index(client: QdrantClient, collection: str) -> sparse.KeywordIndex:
    """A collection's keyword index, read from its stored keyword vectors."""
    point_ids: list[str] = []
    doc_ids: list[str] = []
    vectors: list[sparse.SparseVector] = []
    offset = None
    while True:
        points, offset = client.scroll(
            collection, limit=1024, offset=offset, with_payload=[f"{METADATA_KEY}.doc_id"], with_vectors=[SPARSE]
        )
        for p in points:
            stored = p.vector.get(SPARSE) if isinstance(p.vector, dict) else None
            if isinstance(stored, models.SparseVector):
                point_ids.append(str(p.id))
                doc_ids.append(hit(p.payload, 0).doc_id)
                vectors.append(sparse.SparseVector(list(stored.indices), list(stored.values)))
        if offset is None:
            break
    return sparse.KeywordIndex(point_ids, doc_ids, vectors)


def unit_vectors(vectors: Sequence[Sequence[float]]) -> list[list[float]]:
    """Vectors scaled to unit length (zero vectors stay zero): dot product becomes cosine."""
    import numpy as np

    if not vectors:
        return []
    array = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), -1)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    unit: list[list[float]] = (array / np.where(norms == 0, 1.0, norms)).tolist()
    return unit
