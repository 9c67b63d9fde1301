"""A document's language, and the embedding model and keyword analyser that fit it.

Detection counts words by script, cheaply (regular expressions over at most `SAMPLE_CHARS` of
text): each Han, kana or Hangul character counts as one word, as does each run of Latin letters.
A document is Chinese (or Japanese, Korean) when at least half its words are CJK, mixed from
`MIXED_SHARE`, and otherwise English when enough of its Latin words are English stop words, else
another language. Measured on the Debian Reference's PDFs page by page: see `detect`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from core import text
from core.embeddings import BUNDLED_MODEL, MULTILINGUAL_MODEL, TUNED_PREFIX
from core.sparse import ENGLISH_STOP_WORDS

Language = Literal["en", "zh", "ja", "ko", "mixed", "other"]
NAMES: dict[str, str] = {
    "en": "English",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
    "mixed": "Chinese + English",
    "other": "not English",
}
# A knowledge base's analyser (and, with no model chosen, its model) follows its documents' language.
AUTO = "auto"
# CJK words at or above this share: a CJK document; from MIXED_SHARE up: Chinese and English mixed.
CJK_SHARE = 0.5
MIXED_SHARE = 0.15
# Latin text is English when at least this share of its words are English stop words and few are French,
# German or Spanish ones: on the Debian Reference's pages, English 0.2-0.37 (deciles) and the others under 0.03,
# French pages 0.06-0.31 of their own; wrong pages: English 2/260, French 16/264, German 1/275.
ENGLISH_STOP_SHARE = 0.1
OTHER_STOP_SHARE = 0.03
# Enough text to decide (a few pages), read from across the document so a cover or a preface does not decide.
SAMPLE_CHARS = 60_000

_HAN = re.compile(f"[{text.HAN}]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+")
_OTHER_STOP_WORDS = (
    frozenset(
        """le la les des du de et est un une pour dans que qui sur pas avec ce cette il elle sont au aux par plus ou
    vous nous der die das und ist nicht mit den von zu ein eine auf für im dem sich es werden wird oder auch bei
    el los las y en por con para del se lo como más pero""".split()  # noqa: SIM905 - a word list reads better as text
    )
    - ENGLISH_STOP_WORDS
)


@dataclass(frozen=True)
class Fit:
    """The embedding model and keyword analyser a knowledge base of one language should use."""

    embedding_model: str
    analyser: str


ENGLISH_FIT = Fit(BUNDLED_MODEL, "english")
# Multilingual E5 reads 90+ languages; jieba's words are for Chinese, the English analyser's character
# pairs serve other CJK scripts, and its Latin words other Latin-script languages.
_FITS: dict[str, Fit] = {
    "en": ENGLISH_FIT,
    "zh": Fit(MULTILINGUAL_MODEL, "chinese"),
    "mixed": Fit(MULTILINGUAL_MODEL, "chinese"),
    "ja": Fit(MULTILINGUAL_MODEL, "english"),
    "ko": Fit(MULTILINGUAL_MODEL, "english"),
    "other": Fit(MULTILINGUAL_MODEL, "english"),
}


def sample(texts: Iterable[str], limit: int = SAMPLE_CHARS) -> str:
    """Up to `limit` characters taken evenly from across the texts (pages), in order."""
    pages = [t for t in texts if t.strip()]
    total = sum(len(t) for t in pages)
    if total <= limit:
        return "\n".join(pages)
    share = limit / total
    return "\n".join(t[: max(1, int(len(t) * share))] for t in pages)


def detect(text: str) -> Language | None:
    """The language of `text`; None when it has no words to tell by.

    On the Debian Reference 2.100 PDFs, page by page (pages with text; `bench/real_docs.py` prints it):
    English 258/260 "en", Chinese 250/250 "zh" or "mixed", French 248/264 and German 274/275 "other",
    Japanese 248/271 "ja"; every whole document right, in 5 ms (quiet) to 35 ms (load 13 on 2 cores)
    each. lingua-language-detector (2.1.1, the same six languages) on the same pages: 260, 248, 223,
    275, 235 right, 12-59 ms a document (quiet), and a 96 MB wheel: not worth it here.
    """
    han = len(_HAN.findall(text))
    kana = len(_KANA.findall(text))
    hangul = len(_HANGUL.findall(text))
    latin = _LATIN_WORD.findall(text)
    cjk = han + kana + hangul
    words = cjk + len(latin)
    if words == 0:
        return None
    share = cjk / words
    if share >= CJK_SHARE:
        if hangul > cjk / 2:
            return "ko"
        return "ja" if kana >= 0.1 * cjk else "zh"
    if share >= MIXED_SHARE:
        return "mixed"
    lower = [w.lower() for w in latin]
    english = sum(w in ENGLISH_STOP_WORDS for w in lower)
    other = sum(w in _OTHER_STOP_WORDS for w in lower)
    return "en" if english >= ENGLISH_STOP_SHARE * len(lower) and other < OTHER_STOP_SHARE * len(lower) else "other"


def detect_pages(pages: Iterable[str]) -> Language | None:
    """The language of a document from its pages' text (a sample of it: see `sample`)."""
    return detect(sample(pages))


def fit(language: str | None) -> Fit:
    """The model and analyser for a knowledge base of this language (English's when unknown)."""
    return _FITS.get(language or "en", ENGLISH_FIT)


def combined(languages: Iterable[str | None]) -> Language | None:
    """One language for several documents: theirs if they agree, "mixed" for English with CJK, else "other"."""
    found = {lang for lang in languages if lang}
    if not found:
        return None
    if len(found) == 1:
        return found.pop()  # type: ignore[return-value]
    return "mixed" if found <= {"en", "zh", "mixed"} else "other"


def english_only(embedding_model: str) -> bool:
    """Whether the model reads English only: the bundled MiniLM, or one tuned from it (`core.embedding_tuner`)."""
    return embedding_model == BUNDLED_MODEL or embedding_model.startswith(TUNED_PREFIX)


def mismatch(language: str | None, embedding_model: str, analyser: str | None) -> str | None:
    """Why a document in `language` does not fit a knowledge base with this model and analyser; None if it fits.

    Only a CJK script is a mismatch: "other" (Latin script without English stop words) is also what a
    few English words with markup or numbers give, and MiniLM still reads Latin-script words.
    """
    if language in (None, "en", "other") or not english_only(embedding_model):
        return None
    wanted = fit(language)
    name = NAMES.get(language, language)
    words = ", and its keyword analyser splits English words" if analyser == "english" != wanted.analyser else ""
    return (
        f"The text is {name}, but this knowledge base embeds with {embedding_model}, an English-only model{words}: "
        f"questions in {name} would find little. Put it in a knowledge base with {wanted.embedding_model} "
        f"and the {wanted.analyser} analyser instead."
    )


class KbReader(Protocol):
    """What `holds_chinese` reads of a knowledge base: `core.store.Store` (which imports this module)."""

    def get_kb(self, name: str) -> Any: ...
    def list_documents(self, kb: str) -> Sequence[Any]: ...
    def chunks_of(self, kb: str, doc_id: str, *, start: int = 0, limit: int | None = None) -> Sequence[Any]: ...


def holds_chinese(store: KbReader, name: str) -> bool:
    """Whether a knowledge base holds Chinese text: jieba's analyser, a Chinese document, or CJK first chunks.

    The first chunks are read only for documents added before their language was recorded.
    """
    if store.get_kb(name).analyser == "chinese":
        return True
    docs = store.list_documents(name)
    if any(d.language in ("zh", "mixed") for d in docs):
        return True
    texts = [h.text for d in docs[:3] if d.language is None for h in store.chunks_of(name, d.doc_id, limit=2)]
    return text.is_cjk(" ".join(texts))
