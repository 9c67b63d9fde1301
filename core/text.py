"""What every room means by a CJK character, and whether a text is CJK.

Character classes (for `re` brackets), named once so that a tokenizer, the language check, the layout
clean-up and chunking do not each write their own ranges:
- `HAN`: the CJK ideographs (extension A, the unified block, the compatibility ideographs);
- `KANA`: hiragana and katakana; `HANGUL`: hangul syllables;
- `WIDE`: every East Asian wide character (radicals, punctuation, kana, ideographs, hangul,
  full-width forms): what chunking weighs as about three Latin letters.
"""

from __future__ import annotations

import re

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
KANA = "\u3040-\u30ff"
HANGUL = "\uac00-\ud7af"
WIDE = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"

_WIDE = re.compile(f"[{WIDE}]")
# Where one sentence ends and the next begins inside a line, for every room (the prompt's excerpt, Compare's
# "Supported by", the metrics' claims, the generated questions): . ! ? before white space, with a closing quote
# or bracket kept in the sentence it closes, unless a lower-case word follows ("e.g. the"; "3.5" and "e.g.x" stay
# whole for want of a space); and after the CJK full stops, which need no space.
SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)\]]))\s+(?![\sa-z])|(?<=[。！？；])\s*")
_PARAGRAPH = re.compile(r"\n\s*\n\s*")
_NEXT_LINE_STARTS = re.compile(r"\s*(?:[-*#|•]|\d+[.)]\s|[A-Z\u3040-\u30ff\u4e00-\u9fff])")
_OPEN_END = re.compile(r"(?:[.!?。！？；:,]|\b(?:a|an|the|of|and|or|to|in|on|at|by|for|with))$", re.IGNORECASE)
_WORD = re.compile(r"\w")


def count_cjk(text: str) -> int:
    """How many East Asian wide characters (`WIDE`) the text holds."""
    return len(_WIDE.findall(text))


def is_cjk(text: str, share: float = 0.2) -> bool:
    """Whether at least `share` of the text's non-space characters are CJK."""
    letters = sum(not ch.isspace() for ch in text)
    return letters > 0 and count_cjk(text) >= share * letters


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of a chunk, white space trimmed; pieces without a word dropped.

    Sentences end at `SENTENCE_BREAK`, at a blank line, and at the end of a heading or list item line
    (`_line_breaks`); a sentence a PDF wrapped over lines stays one.
    """
    breaks = [(m.start(), m.end()) for m in SENTENCE_BREAK.finditer(text)]
    breaks += [(m.start(), m.end()) for m in _PARAGRAPH.finditer(text)] + _line_breaks(text)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for begin, after in [*sorted(breaks), (len(text), len(text))]:
        if begin < cursor:
            continue
        piece = text[cursor:begin]
        start, stop = cursor + len(piece) - len(piece.lstrip()), cursor + len(piece.rstrip())
        if stop > start and _WORD.search(text, start, stop):
            spans.append((start, stop))
        cursor = after
    return spans


def sentences(text: str) -> list[str]:
    """The sentences of a text (`sentence_spans`), as strings."""
    return [text[start:end] for start, end in sentence_spans(text)]


def _line_breaks(text: str) -> list[tuple[int, int]]:
    """Line ends that end a sentence without a mark: after a heading or a list item, before the next one.

    A long line, or one ending in "the" or "of", is a sentence wrapped over lines (PDF text), not a heading.
    """
    out: list[tuple[int, int]] = []
    pos = 0
    lines = text.split("\n")
    for line, following in zip(lines, lines[1:], strict=False):
        end = pos + len(line)
        bare = line.strip()
        # A line that starts in lower case is the middle of a sentence wrapped over lines, not a heading.
        short = not bare[:1].islower() and (len(bare.split()) <= 8 or bool(re.match(r"[-*•]|\d+[.)]\s", bare)))
        if bare and short and not _OPEN_END.search(bare) and _NEXT_LINE_STARTS.match(following):
            out.append((end, end + 1))
        pos = end + 1
    return out
