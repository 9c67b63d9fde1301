"""The manifest: one Qdrant point per finished document, written after all of its chunks.

Search, listing and the chunk browser see a document only through its manifest entry, so a
document is either fully searchable or absent. The manifest is its own collection (no vectors,
payload only) shared by every knowledge base; callers hold the store's lock.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from qdrant_client import QdrantClient, models

MANIFEST = "ragtune_manifest"
_NAMESPACE = uuid.UUID("8f7b0c1e-4c1a-5e8e-9a57-2a1d2e6b9c41")


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
    # Pages listed but not searched ("contents", "index", "blank"), and those read by OCR ("ocr").
    page_notes: dict[str, list[int]] = field(default_factory=dict)
    language: str | None = None  # core.language.detect; None for documents added before it


def kb_filter(kb: str, **fields: Any) -> models.Filter:
    conditions = [models.FieldCondition(key="kb", match=models.MatchValue(value=kb))]
    conditions += [models.FieldCondition(key=k, match=models.MatchValue(value=v)) for k, v in fields.items()]
    return models.Filter(must=list(conditions))


class Manifest:
    """Reads and writes the manifest collection through a Qdrant client."""

    def __init__(self, client: QdrantClient, *, server: bool) -> None:
        self.client = client
        if not client.collection_exists(MANIFEST):
            client.create_collection(MANIFEST, vectors_config={})
            if server:
                for key in ("kb", "doc_id", "filename"):
                    client.create_payload_index(MANIFEST, key, models.PayloadSchemaType.KEYWORD)

    @staticmethod
    def point_id(kb: str, doc_id: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"{kb}/{doc_id}"))

    def find(self, kb: str, **fields: Any) -> list[DocumentRecord]:
        """Every record of `kb` whose payload matches `fields` (all of them if none)."""
        flt = kb_filter(kb, **{k: v for k, v in fields.items() if v is not None})
        records: list[DocumentRecord] = []
        offset = None
        while True:
            points, offset = self.client.scroll(MANIFEST, scroll_filter=flt, limit=256, offset=offset)
            records += [DocumentRecord(**(p.payload or {})) for p in points]
            if offset is None:
                return records

    def write(self, record: DocumentRecord) -> None:
        point = models.PointStruct(id=self.point_id(record.kb, record.doc_id), vector={}, payload=asdict(record))
        self.client.upsert(MANIFEST, points=[point])

    def remove(self, kb: str, doc_id: str) -> None:
        self.client.delete(MANIFEST, points_selector=[self.point_id(kb, doc_id)])

    def remove_kb(self, kb: str) -> None:
        self.client.delete(MANIFEST, points_selector=models.FilterSelector(filter=kb_filter(kb)))
