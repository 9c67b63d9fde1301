"""Answer and retrieval metrics as pure functions (definitions in EVALUATION.md).

Every text score counts the normalised tokens of `core.matching`, whose checks (`contains`,
`is_correct`, the headline check calibrated by hand in tests/fixtures/calibration.jsonl) are named here
too, so that a score is always read from this module.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from core.matching import NUMBER_WORDS as NUMBER_WORDS
from core.matching import RECALL_THRESHOLD as RECALL_THRESHOLD
from core.matching import contains as contains
from core.matching import is_correct as is_correct
from core.matching import normalize as normalize
from core.matching import numbers as numbers
from core.matching import token_recall as token_recall
from core.matching import tokens as tokens
from core.text import SENTENCE_BREAK


def exact_match(answer: str, expected: str) -> bool:
    return tokens(answer) == tokens(expected)


def token_f1(answer: str, expected: str) -> float:
    """F1 over the bags of normalised tokens (SQuAD); 1.0 when both are empty, 0.0 when one is."""
    a, e = tokens(answer), tokens(expected)
    if not a or not e:
        return float(a == e)
    common = sum((Counter(a) & Counter(e)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(e)
    return 2 * precision * recall / (precision + recall)


def text_scores(answer: str, expected: str) -> dict[str, bool | float]:
    """The checks that need only the two texts (stored with each answer, recomputed when a run is read)."""
    return {
        "correct": is_correct(answer, expected),
        "exact": exact_match(answer, expected),
        "contains": contains(answer, expected),
        "f1": round(token_f1(answer, expected), 4),
        "recall": round(token_recall(answer, expected), 4),
    }


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity; 0.0 when either vector is all zeros."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def sentences(text: str) -> list[str]:
    """Sentences of an answer (English and Chinese end marks); empty pieces dropped."""
    return [s.strip() for s in SENTENCE_BREAK.split(text.strip()) if s and s.strip() and tokens(s)]


def claims(text: str) -> list[str]:
    """The sentences of an answer worth checking against sources: three tokens or more ("1." is not a claim)."""
    return [s for s in sentences(text) if len(tokens(s)) >= 3]


def source_rank(retrieved: Sequence[tuple[str, int]], source: str | None, page: int | None = None) -> int | None:
    """1-based rank of the first retrieved chunk from the expected document (and page, when given).

    `retrieved` is (filename, page) in the order the search returned them. None when nothing matched.
    """
    if not source:
        return None
    for rank, (filename, chunk_page) in enumerate(retrieved, start=1):
        if filename == source and (page is None or chunk_page == page):
            return rank
    return None


def hit_at(rank: int | None, k: int) -> bool:
    return rank is not None and rank <= k


def reciprocal_rank(rank: int | None) -> float:
    return 1.0 / rank if rank else 0.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation, as numpy's default; None when empty."""
    data = sorted(values)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Forgetting:
    """Control-set accuracy of the base and of the fine-tuned model, on the questions the base gets right."""

    kept: int
    base_accuracy: float | None
    tuned_accuracy: float | None

    @property
    def drop(self) -> float | None:
        """Percentage points lost (positive = forgot)."""
        if self.base_accuracy is None or self.tuned_accuracy is None:
            return None
        return self.base_accuracy - self.tuned_accuracy


def forgetting(base_correct: Sequence[bool], tuned_correct: Sequence[bool]) -> Forgetting:
    """Compare base and fine-tuned answers question by question, keeping the questions the base gets right."""
    if len(base_correct) != len(tuned_correct):
        raise ValueError("base and tuned answers must cover the same questions")
    kept = [t for b, t in zip(base_correct, tuned_correct, strict=True) if b]
    if not kept:
        return Forgetting(0, None, None)
    return Forgetting(len(kept), 1.0, sum(kept) / len(kept))
