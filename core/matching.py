"""Whether a text holds an expected answer: the normalised tokens every score counts, and the checks on them.

Shared by evaluation (an answer against the expected one) and fine-tuning (which retrieved chunk holds a
pair's answer), so both read "holds the answer" the same way; the scores built on them are in
`core.evaluation.metrics` (definitions in EVALUATION.md).

Normalisation follows SQuAD v1.1 (lower-case, drop punctuation and English articles, collapse
whitespace) with three additions, each because the sample answers needed it:
- NFKC first, so full-width digits and letters (２０, ＡＢ) equal their ASCII forms;
- punctuation is every Unicode punctuation character, so Chinese `，。：` go too, but a `.`, `,` or
  `:` between two digits stays (`3.8`, `10:00`, `1,500` are one token, not `38` or `1000`);
- number words zero to twenty become digits (`six months` = `6 months`);
- British -metre/-litre spellings become -meter/-liter (the sample answers say metres, models say meters).
Tokens are whitespace-separated words, except that each CJK character (Han, kana) is a token of its
own: Chinese has no spaces, and a character is the unit CMRC and DuReader score F1 over.
The correctness checks (`contains`, `is_correct`) read a hyphen between two letters as part of the
word: "systemd-systemvunit" is one word, so it does not contain the expected answer "systemd". It
changed no verdict of 152 stored answers (the calibration set, the support labels) nor of 80 fresh
ones (PE and RAG on the sample set, the embedded model), and every expected answer of the sample and
real-document sets is still found in its source page.

The headline check, `is_correct`, is calibrated by hand (tests/fixtures/calibration.jsonl).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from core.text import HAN, KANA

_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")
    )
}  # fmt: skip
NUMBER_WORDS = tuple(_NUMBER_WORDS)  # zero .. twenty, in order
_ARTICLES = {"a", "an", "the"}
_CJK = KANA + HAN
_TOKEN = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")
_NUMBER_SEPARATOR = re.compile(r"(?<=\d)[.,:](?=\d)")
_WORD_HYPHEN = re.compile(r"(?<=[^\W\d_])[-\u2010](?=[^\W\d_])")
_SPELLING = re.compile(r"^(\w*?)(met|lit)re(s?)$")
_KEEP = "\x00"  # stands in for a separator inside a number while punctuation is dropped


def _strip_punctuation(text: str) -> str:
    return "".join(" " if unicodedata.category(ch).startswith("P") or ch in "$+<=>^`|~" else ch for ch in text)


def tokens(text: str, *, hyphenated: bool = False) -> list[str]:
    """Normalised tokens: words, numbers kept whole, each CJK character alone; no articles.

    Args:
        hyphenated: keep a word with a hyphen between letters whole ("apt-get"), as the correctness checks read it.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _NUMBER_SEPARATOR.sub(lambda m: _KEEP + str(".,:".index(m.group(0))), text)
    if hyphenated:
        text = _WORD_HYPHEN.sub(_KEEP + "3", text)
    text = _strip_punctuation(text)
    text = re.sub(f"{_KEEP}([0123])", lambda m: ".,:-"[int(m.group(1))], text)
    out = []
    for token in _TOKEN.findall(text):
        if token in _ARTICLES:
            continue
        out.append(_NUMBER_WORDS.get(token) or _SPELLING.sub(r"\1\2er\3", token))
    return out


def normalize(text: str) -> str:
    """The normalised text: its tokens joined by single spaces."""
    return " ".join(tokens(text))


def token_recall(answer: str, expected: str, *, hyphenated: bool = False) -> float:
    """Share of the expected answer's tokens (as a bag) that the answer contains."""
    a, e = tokens(answer, hyphenated=hyphenated), tokens(expected, hyphenated=hyphenated)
    if not e:
        return 0.0
    return sum((Counter(a) & Counter(e)).values()) / len(e)


def _within(answer: list[str], expected: list[str]) -> bool:
    return bool(expected) and f" {' '.join(expected)} " in f" {' '.join(answer)} "


def contains(answer: str, expected: str) -> bool:
    """The normalised expected answer appears in the normalised answer, on word boundaries.

    Token boundaries, so that `20 weeks` is not found in `120 weeks`; a hyphenated word is one word,
    so `systemd` is not found in `systemd-systemvunit` (an expected answer with a hyphen of its own is
    also found written without it: `Port-Ellis` in `Port Ellis`); CJK characters are tokens, so `20周`
    is found in `带薪假期为20周`.
    """
    whole = tokens(expected, hyphenated=True)
    if _within(tokens(answer, hyphenated=True), whole):
        return True
    return any("-" in t for t in whole) and _within(tokens(answer), tokens(expected))


def numbers(text: str) -> list[str]:
    """The numeric tokens of a text, normalised (`six` -> `6`, `3.8` stays `3.8`)."""
    return [t for t in tokens(text) if any(ch.isdigit() for ch in t)]


RECALL_THRESHOLD = 0.6


def is_correct(answer: str, expected: str) -> bool:
    """The headline check: contains; or every number of the expected answer and most of its words.

    `contains` alone is too strict for a model that rephrases ("the extension of the travel desk is
    2210" for "Extension 2210"); token F1 punishes wordy but right answers. So: every number (and
    code with digits) of the expected answer must appear, since numbers carry the facts (a wrong
    year or price with the right words around it is wrong), and then either 60% of the expected
    tokens appear, or the expected answer is a number with at most two other tokens ("214 people",
    "386人": the unit may be worded otherwise, "214 employees", "386名员工").

    On 80 hand-labelled answers of the sample set (40 PE, 40 RAG; tests/fixtures/calibration.jsonl)
    it agrees with the labels on 97.5%, contains on 95%, token F1 >= 0.3 on 91%, >= 0.5 on 86%,
    exact match on 81%. Its two misses: a right amount without the expected condition (recall
    2/8), and a list of versions that includes the right one.
    """
    answer_tokens = tokens(answer)
    if not answer_tokens:
        return False
    if contains(answer, expected):
        return True
    expected_numbers = numbers(expected)
    if any(n not in answer_tokens for n in expected_numbers):
        return False
    others = [t for t in tokens(expected) if t not in expected_numbers]
    recall = token_recall(answer, expected, hyphenated=True)
    return recall >= RECALL_THRESHOLD or (bool(expected_numbers) and len(others) <= 2)
