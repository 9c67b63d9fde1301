"""Keyword (sparse) vectors for hybrid search: BM25 term weights, with IDF left to Qdrant.

A knowledge base with a sparse index names its analyser, which turns text into terms:

- `english`: lower-case words and numbers, English stop words dropped, no stemming; runs of
  CJK characters become overlapping character pairs (needs no dictionary).
- `chinese`: the same for Latin text, and jieba's search-mode words for CJK runs (jieba
  ships its dictionary; it loads once, in about a second).

Terms map to sparse indices by CRC-32; values are BM25's saturated term frequency, and the
collection's `Modifier.IDF` makes Qdrant multiply in each term's inverse document frequency,
so a query (each of its terms weighted 1) scores chunks by BM25.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from core.text import HAN

log = logging.getLogger(__name__)

Analyser = Literal["english", "chinese"]
ANALYSERS: dict[str, str] = {
    "english": "English words (Chinese as character pairs)",
    "chinese": "jieba words for Chinese, English words for the rest",
}
DEFAULT_ANALYSER: Analyser = "english"

# BM25's usual constants; chunks are all about the same size, so a fixed average length
# (about what a default 800-character English chunk yields) stands in for the collection's.
K1 = 1.2
B = 0.75
AVERAGE_TERMS = 90.0

# Version and dotted numbers ("3.2.0", "10:00", "1.5") stay whole; other words split on punctuation.
_LATIN = re.compile(r"\d+(?:[.:,]\d+)+|[^\W_]+")
_CJK_RUN = re.compile(f"[{HAN}]+")
_SPLIT_CJK = re.compile(f"([{HAN}]+)")

ENGLISH_STOP_WORDS = frozenset(
    """a about after all also am an and any are as at be been before being but by can could did do does
    doing for from had has have having he her here hers him his how i if in into is it its itself me my
    no nor not of off on once only or other our ours out over own same she should so some such than that
    the their theirs them then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours""".split()  # noqa: SIM905 - a word list reads better as text
)
CHINESE_STOP_WORDS = frozenset(
    """的 了 是 在 和 与 及 或 也 都 就 而 被 把 对 为 之 其 这 那 有 我 你 他 她 它 们 吗 呢 吧 啊 呀 么 着 过
    个 中 上 下 又 还 并 要 会 能 将 从 以 于 等 该 此 时 后 前 里 所 如 则 但 即 什么 怎么 怎样 如何 多少 哪个 哪些
    几 哪 是否 可以 需要 应该 什么样 为什么 我们 你们 他们 一个 一下 现在""".split()  # noqa: SIM905
)


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


class _Jieba:
    """jieba's tokenizer, loaded on first use, shared by every thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokenizer: Any = None

    def words(self, text: str) -> list[str]:
        tokenizer = self._tokenizer
        if tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    import jieba

                    jieba.setLogLevel(logging.WARNING)
                    t = jieba.Tokenizer()
                    t.initialize()
                    self._tokenizer = t
                tokenizer = self._tokenizer
        return list(tokenizer.cut_for_search(text, HMM=True))


_jieba = _Jieba()


def terms(text: str, analyser: str) -> list[str]:
    """The terms the analyser finds in `text`, in order, stop words dropped."""
    out: list[str] = []
    for part in _SPLIT_CJK.split(text.lower()):
        if not part:
            continue
        if _CJK_RUN.fullmatch(part):
            if analyser == "chinese":
                out += [w for w in _jieba.words(part) if w not in CHINESE_STOP_WORDS]
            else:
                out += _bigrams(part)
        else:
            out += [w for w in _LATIN.findall(part) if w not in ENGLISH_STOP_WORDS]
    return out


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def _index(term: str) -> int:
    return zlib.crc32(term.encode("utf-8"))


def document_vector(text: str, analyser: str) -> SparseVector:
    """BM25 term-frequency weights of a chunk (Qdrant applies IDF)."""
    counts = _hashed(terms(text, analyser))
    length = sum(counts.values())
    norm = K1 * (1 - B + B * length / AVERAGE_TERMS)
    indices = sorted(counts)
    return SparseVector(indices, [counts[i] * (K1 + 1) / (counts[i] + norm) for i in indices])


def query_vector(text: str, analyser: str) -> SparseVector:
    """Each distinct query term weighted 1: the score is the sum of its BM25 weights in a chunk."""
    indices = sorted(_hashed(terms(text, analyser)))
    return SparseVector(indices, [1.0] * len(indices))


def document_vectors(texts: Sequence[str], analyser: str) -> list[SparseVector]:
    return [document_vector(t, analyser) for t in texts]


def _hashed(words: Iterable[str]) -> Counter[int]:
    return Counter(_index(w) for w in words)


class KeywordIndex:
    """An in-memory inverted index over one collection's keyword vectors, scored as Qdrant scores them.

    Qdrant local mode scores sparse vectors point by point in Python (about half a second at
    10,000 chunks); this index answers the same query (BM25 weights times Qdrant's IDF,
    ln(1 + (N - df + 0.5) / (df + 0.5))) with numpy in about a millisecond. Local mode has a
    single writer, so the store that owns it drops it on every write and rebuilds it on demand.
    """

    def __init__(self, point_ids: Sequence[str], doc_ids: Sequence[str], vectors: Sequence[SparseVector]) -> None:
        import numpy as np

        self.point_ids = list(point_ids)
        self._doc_names = sorted(set(doc_ids))
        codes = {name: i for i, name in enumerate(self._doc_names)}
        self._doc_codes = np.fromiter((codes[d] for d in doc_ids), dtype=np.int64, count=len(doc_ids))
        rows = np.repeat(np.arange(len(vectors), dtype=np.int64), [len(v.indices) for v in vectors])
        terms_ = np.fromiter((i for v in vectors for i in v.indices), dtype=np.int64, count=len(rows))
        values = np.fromiter((x for v in vectors for x in v.values), dtype=np.float32, count=len(rows))
        order = np.argsort(terms_, kind="stable")
        self._terms, starts = np.unique(terms_[order], return_index=True)
        self._starts = np.append(starts, len(order))
        self._rows = rows[order]
        self._values = values[order]

    def __len__(self) -> int:
        return len(self.point_ids)

    def search(self, query: SparseVector, limit: int, doc_ids: set[str] | None = None) -> list[tuple[str, float]]:
        """The best `limit` (point id, score) pairs with any query term, among chunks of `doc_ids` if given."""
        import numpy as np

        n = len(self.point_ids)
        scores = np.zeros(n, dtype=np.float32)
        hit = np.zeros(n, dtype=bool)
        for term, weight in zip(query.indices, query.values, strict=True):
            at = int(np.searchsorted(self._terms, term))
            if at == len(self._terms) or self._terms[at] != term:
                continue
            lo, hi = self._starts[at], self._starts[at + 1]
            idf = math.log((n - (hi - lo) + 0.5) / ((hi - lo) + 0.5) + 1)
            scores[self._rows[lo:hi]] += weight * idf * self._values[lo:hi]
            hit[self._rows[lo:hi]] = True
        if doc_ids is not None:
            allowed = [code for code, name in enumerate(self._doc_names) if name in doc_ids]
            hit &= np.isin(self._doc_codes, allowed)
        candidates = np.flatnonzero(hit)
        if len(candidates) > limit:
            candidates = candidates[np.argpartition(-scores[candidates], limit - 1)[:limit]]
        best = sorted(candidates.tolist(), key=lambda r: -scores[r])
        return [(self.point_ids[r], float(scores[r])) for r in best]
