"""Labels (expanders, tabs, buttons) built from user text: shown as typed, never as Markdown.

Streamlit renders a subset of Markdown in labels: links, images, emphasis, code, `:red[colour]`,
`:emoji:` and `:material/icon:` codes, and `$LaTeX$`. A document heading or a file name such as
`[click](http://evil)` or `![x](http://tracker/pixel)` must appear as those characters, so every
ASCII punctuation mark that Markdown could read is escaped with a backslash (CommonMark shows
an escaped punctuation mark as itself). This module imports neither `core` nor Streamlit.
"""

from __future__ import annotations

import re
import string

# Every ASCII punctuation character: CommonMark lets a backslash escape any of them, and only them.
_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_SPACES = re.compile(r"\s+")


def label_text(text: str, max_chars: int | None = 120) -> str:
    """`text` escaped for a Streamlit label: on one line, cut to `max_chars`, every Markdown mark escaped."""
    flat = _SPACES.sub(" ", text).strip()
    if max_chars is not None and len(flat) > max_chars:
        flat = flat[: max_chars - 1].rstrip() + "…"
    return _PUNCTUATION.sub(r"\\\1", flat)
