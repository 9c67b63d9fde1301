"""A retrieved chunk's excerpt: the sentences that best match the question, the prompt's `{excerpt}`.

A chunk's sentences are found with the PDF's wrapped lines joined again (`sentences`), split where
`core.text` ends a sentence, with one- or two-word fragments kept beside the sentence they name.
"""

from __future__ import annotations

import re
from collections import Counter

from core.text import HAN, HANGUL, KANA, SENTENCE_BREAK, is_cjk

EXCERPT_SENTENCES = 1
# A line that starts a unit of its own: a list item, a numbered step, a Markdown heading, a table row.
_LINE_START = re.compile(r"^(?:[-*•·–]\s|\d{1,2}[.)]\s|#|\|)")
_WRAP_WIDTH = 60  # a line at least this long that ends mid-sentence was wrapped by the PDF's layout
_LINE_END = (".", ":", "!", "?", ";", "。", "！", "？", "；", "：")
_WORD = re.compile(r"\w+")
_CJK_RUN = re.compile(f"[{HAN}{KANA}{HANGUL}]+")
_QUESTION_WORDS = {
    "a", "an", "the", "is", "are", "was", "were", "be", "of", "to", "in", "on", "for", "by", "at", "with", "and",
    "or", "what", "which", "who", "whom", "whose", "how", "when", "where", "why", "does", "do", "did", "can", "may",
    "must", "it", "its", "this", "that", "from", "as", "per", "much", "many", "long",
}  # fmt: skip


def _stems(text: str) -> set[str]:
    """What a sentence and the question are matched on: five-letter prefixes of words, CJK character pairs.

    Prefixes stand in for stems: "founded" meets "founder", "lockers" meets "locker". Chinese writes no
    spaces, so a run of CJK characters reads as one long "word" that no sentence shares with the question; its
    overlapping character pairs are what 核心工作时间 and 核心工作时间是 have in common.
    """
    lower = text.lower()
    stems = {w[:5] for w in _WORD.findall(_CJK_RUN.sub(" ", lower)) if w not in _QUESTION_WORDS}
    for run in _CJK_RUN.findall(lower):
        stems |= {run[i : i + 2] for i in range(len(run) - 1)} if len(run) > 1 else {run}
    return stems


def sentences(text: str) -> list[str]:
    """The sentences of a chunk, with the lines a PDF's layout wrapped joined again.

    A line joins the one before when it continues it: it starts in lower case, or the line before
    is a long one that stops mid-sentence. List items, numbered steps, headings and table rows stay
    lines of their own. A fragment of one or two words ("Self-Use.") goes with the sentence after it,
    which it names, or at a line's end with the one before ("rev. F").
    """
    lines: list[str] = []
    for raw in text.split("\n"):
        line = raw.strip()
        prev = lines[-1] if lines else ""
        if not line:
            if prev:
                lines.append("")
            continue
        continues = (
            bool(prev)
            and not _LINE_START.match(line)
            and (
                line[0].islower()
                or line[0] in "，、,;；)）"
                or (len(prev) >= _WRAP_WIDTH and not prev.endswith(_LINE_END))
            )
        )
        if continues:
            lines[-1] = prev + line if is_cjk(prev[-1]) or is_cjk(line[0]) else f"{prev} {line}"
        else:
            lines.append(line)
    out: list[str] = []
    for line in filter(None, lines):
        merged: list[str] = []
        for part in filter(None, (p.strip() for p in SENTENCE_BREAK.split(line))):
            if merged and _fragment(merged[-1]):
                merged[-1] = f"{merged[-1]} {part}"
            else:
                merged.append(part)
        if len(merged) > 1 and _fragment(merged[-1]):  # "rev. F": the last piece ends the sentence before it
            merged[-2:] = [f"{merged[-2]} {merged[-1]}"]
        out += merged
    return out


def _fragment(sentence: str) -> bool:
    return not is_cjk(sentence) and len(sentence.split()) < 3


def excerpt(text: str, question: str, n: int = EXCERPT_SENTENCES) -> str:
    """The `n` sentences of `text` that best match the question, each with the sentence after it, in text order.

    A sentence scores the question's words it shares, each weighted by 1 / the number of the chunk's
    sentences that hold it (a word in every sentence, like the company's name, picks none out). The
    next sentence comes along because the fact often follows the sentence naming the subject. A 135M
    model reads these far better than whole 800-character chunks (bench/quality.py). Sentences are
    `sentences`: a PDF's wrapped lines joined again (on the held-out PDF manual the excerpts then hold
    the answer for 16 of 20 questions instead of 13).
    """
    parts = sentences(text)
    stems = [_stems(p) for p in parts]
    held = Counter(w for s in stems for w in s)
    wanted = _stems(question)

    def score(i: int) -> float:
        return sum(1 / held[w] for w in wanted & stems[i])

    best = sorted(range(len(parts)), key=lambda i: (-score(i), i))[:n]
    keep = set(best) | {i + 1 for i in best if i + 1 < len(parts)}
    if parts and len(parts) - 1 not in best and _cut_cjk_tail(parts[-1]):
        keep.discard(len(parts) - 1)  # "…为起点。 和大": the chunk ends mid-sentence; the next chunk holds it whole
    return " ".join(parts[i] for i in sorted(keep))


def _cut_cjk_tail(sentence: str) -> bool:
    """A chunk's last few CJK characters where the splitter cut a sentence: no sentence end, no other script.

    Only this: a last line without an end that holds a command or a table's caption ("echo … | wall") is an
    answer as often as not (on the Debian Reference's Chinese questions, dropping every such tail changed 3 of 60
    excerpts and lost nothing, but the lines it dropped were commands).
    """
    return len(sentence) < 12 and not sentence.endswith(_LINE_END) and all(is_cjk(c) for c in sentence)
