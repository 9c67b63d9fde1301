"""Question/answer pairs drawn from a knowledge base, for review before training.

Template-based extraction, not the chat model: the embedded 135M model writes unusable
questions (asked to write a question for "The HX4 pump must be recalibrated every six months",
it repeats the sentence). Each fact-bearing sentence (a number, a code, a proper name) becomes
the answer, and the question names its source and its subject:
"What does tidewell_hx4_manual say about the HX4 pump?". The page shows every pair in an
editable table before anything is saved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePath

from core.finetune.datasets import Pair
from core.samples import load_questions
from core.store import SearchHit, Store

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_VERBS = re.compile(
    r"\b(is|are|was|were|has|have|had|must|can|cannot|will|should|may|takes?|runs?|uses?|gets?|"
    r"receives?|includes?|needs?|requires?|covers?|starts?|ends?|opens?|closes?|costs?)\b",
    re.IGNORECASE,
)
_FACT = re.compile(r"\d|\b[A-Z][a-z]+[A-Z]|\b[A-Z]{2,}|(?<!^)(?<![.!?] )\b[A-Z][a-z]{2,}")
_MIN_WORDS, _MAX_WORDS = 6, 45
_PRONOUNS = {"It", "They", "This", "These", "That", "Those", "He", "She", "We", "You", "There", "I"}
_DETERMINERS = {"The", "A", "An", "Each", "Every", "All", "Our", "Your", "Its", "Their", "This", "These"}


def sentences(text: str) -> list[str]:
    flat = " ".join(text.split())
    return [s.strip() for s in _SENTENCE.split(flat) if s.strip()]


def is_fact(sentence: str) -> bool:
    words = sentence.split()
    return _MIN_WORDS <= len(words) <= _MAX_WORDS and sentence[-1:] in ".!?" and bool(_FACT.search(sentence[1:]))


def subject_of(sentence: str, heading: str | None) -> str | None:
    """The words before the first verb ('The HX4 pump' in 'The HX4 pump must be…'), else the heading.

    None for a pronoun subject ('It is reviewed every January'): the sentence needs its context.
    """
    match = _VERBS.search(sentence)
    if match:
        subject = sentence[: match.start()].strip(" ,;:")
        if subject in _PRONOUNS:
            return None
        if 1 <= len(subject.split()) <= 8:
            first, _, rest = subject.partition(" ")
            return f"{first.lower()} {rest}".strip() if first in _DETERMINERS else subject
    if heading:
        return heading.strip("# ").strip()
    return " ".join(sentence.split()[:5]).rstrip(",;:")


def pairs_from_hits(hits: Iterable[SearchHit], *, limit: int = 200) -> list[Pair]:
    seen: set[str] = set()
    out: list[Pair] = []
    for hit in hits:
        source = PurePath(hit.filename).stem
        for sentence in sentences(hit.text):
            if not is_fact(sentence) or sentence in seen:
                continue
            seen.add(sentence)
            subject = subject_of(sentence, hit.heading)
            if subject is None:
                continue
            out.append(Pair(f"What does {source} say about {subject}?", sentence))
            if len(out) >= limit:
                return out
    return out


def pairs_from_kb(store: Store, kb: str, *, limit: int = 200) -> list[Pair]:
    """Fact sentences of every document in the knowledge base, in reading order."""
    hits = [h for doc in store.list_documents(kb) for h in store.chunks_of(kb, doc.doc_id)]
    return pairs_from_hits(hits, limit=limit)


def sample_pairs() -> list[Pair]:
    """The sample question set's answers: facts about the fictional company no model knows in advance."""
    return [Pair(q.question, q.answer) for q in load_questions()]
