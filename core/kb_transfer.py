"""Export a knowledge base to one file and import it into another store, without re-embedding.

The way a knowledge base leaves Qdrant's local mode for a server (`QDRANT_URL`): export it here, start the
app against the server, import it there. The file (gzip JSON lines) holds a header (format, the knowledge
base's chunking and embedding model, its documents' manifest entries), then one line per point with its
vectors (dense, and the keyword vector where it has one) and payload. The import goes through the same
Store calls on either side: the collection is created as `create_kb` makes it (payload indexes on a
server), points are upserted as stored, and each manifest entry is written last, so a document is either
fully searchable or absent.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from qdrant_client import models

from core import sparse
from core.errors import KnowledgeBaseError
from core.manifest import DocumentRecord
from core.search import CONTENT_KEY, DENSE, SPARSE, doc_filter, unit_vectors
from core.store import KnowledgeBase, Store

FORMAT = "ragtune-knowledge-base"
VERSION = 1
_BATCH = 256


def export_kb(store: Store, name: str, path: Path, *, progress: Callable[[int, int], None] | None = None) -> int:
    """Write knowledge base `name` to `path` (atomically); returns the number of points written."""
    kb = store.require_kb(name)
    records = store.list_documents(name)
    total = store.client.count(name, exact=True).count
    header = {"format": FORMAT, "version": VERSION, "kb": asdict(kb), "documents": [asdict(r) for r in records]}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    written = 0
    try:
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            f.write(json.dumps(header, ensure_ascii=False) + "\n")
            offset = None
            while True:
                points, offset = store.client.scroll(
                    name, limit=_BATCH, offset=offset, with_vectors=True, with_payload=True
                )
                for p in points:
                    f.write(json.dumps(_point_row(p, kb), ensure_ascii=False) + "\n")
                written += len(points)
                if progress is not None:
                    progress(written, total)
                if offset is None:
                    break
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return written


def _point_row(point: Any, kb: KnowledgeBase) -> dict[str, Any]:
    vectors = point.vector if isinstance(point.vector, dict) else {kb.dense_vector: point.vector}
    row: dict[str, Any] = {"id": str(point.id), "dense": list(vectors[kb.dense_vector]), "payload": point.payload}
    keywords = vectors.get(SPARSE)
    if keywords is not None:
        row["sparse"] = {"indices": list(keywords.indices), "values": list(keywords.values)}
    return row


def read_header(path: Path) -> dict[str, Any]:
    """The export's header (knowledge base settings and documents), checked."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            header = json.loads(f.readline())
    except (OSError, ValueError, EOFError) as e:
        raise KnowledgeBaseError(f"{path.name} is not a knowledge base export ({e}); export it again.") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        raise KnowledgeBaseError(f"{path.name} is not a knowledge base export of version {VERSION}; export it again.")
    return header


def import_kb(
    store: Store, path: Path, *, name: str | None = None, progress: Callable[[int, int], None] | None = None
) -> KnowledgeBase:
    """Create a knowledge base from an export, vectors as stored (nothing is embedded again).

    Raises:
        KnowledgeBaseError: the file is not an export, the name is taken, or the vectors do not fit.
    """
    header = read_header(path)
    source = KnowledgeBase(**header["kb"])
    target = name or source.name
    kb = store.create_kb_like(target, source)
    if kb.dimension != source.dimension:
        store.delete_kb(target)
        raise KnowledgeBaseError(
            f"{source.embedding_model} gives {kb.dimension} dimensions here, the export has {source.dimension}."
        )
    records = [DocumentRecord(**{**r, "kb": target}) for r in header["documents"]]
    expected = sum(r.chunks for r in records)
    done = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            f.readline()
            batch: list[models.PointStruct] = []
            for line in f:
                batch.append(_point(json.loads(line), source))
                if len(batch) == _BATCH:
                    done += _upsert(store, target, batch, progress, expected, done)
                    batch = []
            done += _upsert(store, target, batch, progress, expected, done)
        for record in records:  # last: a document becomes searchable once all its chunks are in
            store.commit(record)
    except (OSError, ValueError, KeyError, EOFError) as e:
        store.delete_kb(target)
        raise KnowledgeBaseError(f"{path.name} is damaged ({e}); nothing was imported. Export it again.") from e
    return kb


def _point(row: dict[str, Any], kb: KnowledgeBase) -> models.PointStruct:
    vector: dict[str, Any] = {DENSE: row["dense"]}
    if "sparse" in row and kb.analyser:
        vector[SPARSE] = models.SparseVector(**row["sparse"])
    return models.PointStruct(id=row["id"], vector=vector, payload=row["payload"])


def _upsert(
    store: Store,
    name: str,
    batch: list[models.PointStruct],
    progress: Callable[[int, int], None] | None,
    expected: int,
    done: int,
) -> int:
    if batch:
        store.upsert_points(name, batch)
        if progress is not None:
            progress(done + len(batch), expected)
    return len(batch)


# Qdrant's local mode is brute force in numpy and logs a warning past this many points.
LOCAL_MODE_LIMIT = 20_000
NOTICE_FROM = 15_000  # say it before a knowledge base gets there
# bench/retrieval.py --scale: (chunks, p50 dense ms, p50 hybrid ms, the app process's memory MB), measured once.
MEASURED: tuple[tuple[int, float, float, int], ...] = (
    (10_000, 14, 15, 912),
    (50_000, 32, 34, 1_438),
    (100_000, 50, 52, 1_893),
)
MEASURED_ON = "a quiet 2-core machine, MiniLM vectors"


def local_mode_notice(chunks: int, *, server: bool) -> str | None:
    """What a knowledge base of `chunks` costs in local mode and how to move it; None while there is nothing to say."""
    if server or chunks < NOTICE_FROM:
        return None
    figures = "; ".join(
        f"{n:,} chunks: search p50 {dense:.0f} ms dense, {hybrid:.0f} ms hybrid, the process {mb:,} MB"
        for n, dense, hybrid, mb in MEASURED
    )
    measured = f" Measured ({MEASURED_ON}): {figures}." if MEASURED else ""
    return (
        f"This knowledge base holds {chunks:,} chunks. Qdrant's local mode searches every vector one by one and "
        f"keeps them all in this process's memory; it is meant for up to {LOCAL_MODE_LIMIT:,}.{measured} To go "
        "further, run a Qdrant server (`docker run -p 6333:6333 qdrant/qdrant`), export this knowledge base below, "
        "restart the app with QDRANT_URL=http://localhost:6333 and import it there: nothing is embedded again."
    )


def copy_kb(store: Store, source: str, target: str, *, embedding_model: str) -> KnowledgeBase:
    """A new knowledge base with the finished documents of `source`, re-embedded with another model.

    Same chunks (ids, text, metadata), chunking, analyser and mode; documents are committed
    one by one after their chunks, as in ingest.
    """
    src = store.require_kb(source)
    kb = store.create_kb(
        target,
        chunk_size=src.chunk_size,
        chunk_overlap=src.chunk_overlap,
        embedding_model=embedding_model,
        analyser=src.analyser,
        retrieval_mode=src.retrieval_mode if src.analyser else None,  # type: ignore[arg-type]
    )
    embeddings = store.embedder_for(kb).embeddings
    for record in store.list_documents(source):
        with store.guard(f"reading chunks from {source!r}"):
            points, _ = store.client.scroll(source, scroll_filter=doc_filter([record.doc_id]), limit=record.chunks + 1)
        texts = [str((p.payload or {}).get(CONTENT_KEY, "")) for p in points]
        vectors = unit_vectors(embeddings.embed_documents(texts))
        keywords = sparse.document_vectors(texts, kb.analyser) if kb.analyser else None
        copies = []
        for i, (p, vector) in enumerate(zip(points, vectors, strict=True)):
            named: dict[str, Any] = {DENSE: vector}
            if keywords is not None:
                named[SPARSE] = models.SparseVector(indices=keywords[i].indices, values=keywords[i].values)
            copies.append(models.PointStruct(id=p.id, vector=named, payload=p.payload))
        for start in range(0, len(copies), _BATCH):
            store.upsert_points(target, copies[start : start + _BATCH])
        store.commit(replace(record, kb=target))
    return kb
