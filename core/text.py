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
# Where one sentence ends and the next begins inside a line: . ! ? before white space (so "3.5" and "e.g.x"
# stay whole), and after the CJK full stops, which need no space.
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|(?<=[。！？；])")


def count_cjk(text: str) -> int:
    """How many East Asian wide characters (`WIDE`) the text holds."""
    return len(_WIDE.findall(text))


def is_cjk(text: str, share: float = 0.2) -> bool:
    """Whether at least `share` of the text's non-space characters are CJK."""
    letters = sum(not ch.isspace() for ch in text)
    return letters > 0 and count_cjk(text) >= share * letters
