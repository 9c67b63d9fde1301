"""One fact of a user's knowledge base changed in one chunk, and the chunk put back exactly as it was.

The freshness experiment on the user's own documents (`core.evaluation.freshness.run_fact_change`)
needs a question that RAG answers right, the sentence its answer came from, and a changed fact in
that sentence. `own_facts` finds them in an evaluation run; `propose` suggests the change (another
figure, another name) that the user may edit; `edited_chunk` replaces the stored chunk by the edited
copy for the time of the experiment and always puts the original point back.

Before anything changes, the original point (payload and every vector, as Qdrant holds them) is
written to DATA_DIR/freshness/; it is removed only once the point is back. So a run that is stopped
or fails halfway restores it on the way out, and one whose process was killed leaves the file, from
which `restore_pending` puts the chunk back on the next visit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdrant_client import models

from core.documents import Chunk
from core.errors import EvaluationError
from core.evaluation import metrics
from core.evaluation.report import RunData
from core.files import atomic_write_text
from core.search import CONTENT_KEY, METADATA_KEY
from core.store import Store
from core.text import sentence_spans

log = logging.getLogger(__name__)

BACKUPS = "freshness"  # under DATA_DIR


@dataclass(frozen=True)
class OwnFact:
    """A question a RAG strategy answered right, and the sentence of the chunk its answer came from."""

    question: str
    expected: str
    strategy: str  # the run's strategy that answered it right
    kb: str
    doc_id: str
    filename: str
    page: int
    chunk_index: int
    sentence: str
    old: str  # the words of the sentence that state the fact, as written there
    new: str  # the change the app proposes
    at: int = 0  # where `old` starts in the sentence

    def changed_sentence(self, new: str) -> str:
        return self.sentence[: self.at] + new + self.sentence[self.at + len(self.old) :]


def own_facts(run: RunData, kb: str, *, limit: int = 50) -> list[OwnFact]:
    """The run's questions answered right by a strategy retrieving from `kb`, with the fact's sentence."""
    out: list[OwnFact] = []
    seen: set[str] = set()
    for strategy in run.strategies:
        if not strategy.retrieval or strategy.kb != kb:
            continue
        for q in run.questions:
            cell = run.cell(q.id, strategy.name)
            if q.id in seen or cell is None or not cell.correct:
                continue
            fact = _fact_in(cell.sources, q.question, q.answer, strategy.name, kb)
            if fact is not None:
                seen.add(q.id)
                out.append(fact)
                if len(out) >= limit:
                    return out
    return out


def _fact_in(
    sources: Sequence[Mapping[str, Any]], question: str, expected: str, strategy: str, kb: str
) -> OwnFact | None:
    """The first retrieved sentence that states the expected answer, and the words of it to change."""
    for source in sources:
        text = str(source.get("text", ""))
        for start, end in sentence_spans(text):
            sentence = text[start:end]
            found = fact_words(sentence, expected) if metrics.is_correct(sentence, expected) else None
            if found is not None:
                old, at = found
                return OwnFact(
                    question, expected, strategy, kb, str(source.get("doc_id", "")), str(source.get("filename", "")),
                    int(source.get("page", 0)), int(source.get("chunk_index", 0)), sentence, old, propose(old), at,
                )  # fmt: skip
    return None


_NUMBER_WORDS = metrics.NUMBER_WORDS
_NUMBER = re.compile(
    rf"(?<![0-9A-Za-z.,:])\d+(?:[.,:]\d+)*(?![0-9A-Za-z])|\b(?:{'|'.join(_NUMBER_WORDS)})\b", re.IGNORECASE
)


def fact_words(sentence: str, expected: str) -> tuple[str, int] | None:
    """The words of the sentence that carry the expected answer, and where they start.

    Its first number when it has one ("Six." -> "six"), else the answer itself as the sentence writes it.
    """
    wanted = metrics.numbers(expected)
    if wanted:
        for m in _NUMBER.finditer(sentence):
            if metrics.tokens(m.group(0)) == [wanted[0]]:
                return m.group(0), m.start()
        return None
    core = expected.strip().rstrip(".!?").strip()
    if not metrics.tokens(core):
        return None
    found = re.search(rf"(?<![\w-]){re.escape(core)}(?![\w-])", sentence, re.IGNORECASE)
    return (found.group(0), found.start()) if found else None


_NAMES = ("Fenwick", "Ada Fenwick", "Ada Marlow Fenwick")
_WORD = "quillon"  # no document and no model knows it: only a reader of the edited chunk can say it


def propose(old: str) -> str:
    """A changed fact of the same kind: the next figure, the next number word, or an invented name or word."""
    if m := list(re.finditer(r"\d+", old)):
        last = m[-1]
        bumped = str(int(last.group(0)) + 1).zfill(len(last.group(0)))
        return old[: last.start()] + bumped + old[last.end() :]
    if old.lower() in _NUMBER_WORDS:
        word = _NUMBER_WORDS[(_NUMBER_WORDS.index(old.lower()) + 1) % len(_NUMBER_WORDS)]
        return word.capitalize() if old[:1].isupper() else word
    words = old.split()
    if all(w[:1].isupper() for w in words):
        return _NAMES[min(len(words), len(_NAMES)) - 1]
    return " ".join([*words[:-1], _WORD])


def _backup_path(backup_dir: Path, kb: str, point_id: str) -> Path:
    return backup_dir / f"{hashlib.sha256(f'{kb}/{point_id}'.encode()).hexdigest()[:16]}.json"


def _vector_json(vector: Any) -> Any:
    if isinstance(vector, dict):
        return {name: _vector_json(v) for name, v in vector.items()}
    if isinstance(vector, models.SparseVector):
        return {"indices": list(vector.indices), "values": list(vector.values)}
    return list(vector)


def _vector_from_json(data: Any) -> Any:
    if isinstance(data, dict) and set(data) == {"indices", "values"}:
        return models.SparseVector(indices=data["indices"], values=data["values"])
    if isinstance(data, dict):
        return {name: _vector_from_json(v) for name, v in data.items()}
    return data


def _put_back(store: Store, kb: str, point: models.PointStruct, path: Path) -> None:
    store.upsert_points(kb, [point])
    path.unlink(missing_ok=True)


@contextmanager
def edited_chunk(store: Store, kb: str, fact: OwnFact, new: str, backup_dir: Path) -> Iterator[str]:
    """Store the chunk with `fact.old` changed to `new` in its sentence; yields the edited text.

    The original point is on disk before the edit and put back when the block ends, however it ends.

    Raises:
        EvaluationError: the chunk is gone or no longer holds the sentence (re-run the evaluation).
    """
    record = store.get_point(kb, fact.doc_id, fact.chunk_index)
    payload = dict(record.payload or {}) if record is not None else {}
    text = str(payload.get(CONTENT_KEY, ""))
    at = text.find(fact.sentence)
    if record is None or at < 0 or fact.sentence[fact.at : fact.at + len(fact.old)] != fact.old:
        raise EvaluationError(
            f"{fact.filename} no longer holds the sentence {fact.sentence!r} (re-uploaded or deleted since the "
            "run): evaluate again and pick the question anew."
        )
    if not new.strip() or new.strip() == fact.old:
        raise EvaluationError(f"Type a changed fact: {fact.old!r} kept as it is changes nothing.")
    changed = text[:at] + fact.changed_sentence(new.strip()) + text[at + len(fact.sentence) :]
    original = models.PointStruct(
        id=record.id, vector=_vector_from_json(_vector_json(record.vector or {})), payload=payload
    )
    path = _backup_path(backup_dir, kb, str(record.id))
    saved = {"kb": kb, "filename": fact.filename, "id": str(record.id), "payload": payload,
             "vector": _vector_json(record.vector or {})}  # fmt: skip
    atomic_write_text(path, json.dumps(saved))
    try:
        meta = payload.get(METADATA_KEY) or {}
        chunk = Chunk(fact.doc_id, fact.filename, int(meta.get("page", fact.page)), fact.chunk_index, changed,
                      int(meta.get("start", 0)), int(meta.get("end", 0)), meta.get("heading"))  # fmt: skip
        vector = store.embedder_for(store.get_kb(kb)).embeddings.embed_documents([changed])
        store.upsert_chunks(kb, [chunk], vector)
        yield changed
    finally:
        _put_back(store, kb, original, path)


def restore_pending(store: Store, backup_dir: Path) -> list[str]:
    """Put back every chunk a killed run left edited; returns "file (knowledge base)" for each one restored."""
    restored = []
    for path in sorted(backup_dir.glob("*.json")) if backup_dir.is_dir() else []:
        saved = json.loads(path.read_text(encoding="utf-8"))
        doc_id = str((saved["payload"].get(METADATA_KEY) or {}).get("doc_id", ""))
        kb = str(saved["kb"])
        if kb not in {k.name for k in store.list_kbs()} or store.find_document(kb, doc_id=doc_id) is None:
            path.unlink()  # the knowledge base or the document was deleted since: nothing to put back
            continue
        point = models.PointStruct(id=saved["id"], vector=_vector_from_json(saved["vector"]), payload=saved["payload"])
        _put_back(store, kb, point, path)
        log.info("Restored a chunk of %s in %s left edited by an interrupted freshness run", saved["filename"], kb)
        restored.append(f"{saved['filename']} ({kb})")
    return restored
