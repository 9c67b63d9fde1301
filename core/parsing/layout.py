"""Layout clean-up of page text: running heads and feet, hyphenation, contents and index pages, section paths.

Each step is measured on the Debian Reference (bench/parsing.py) and does what document pipelines of RAG
tools do (RAGFlow's DeepDoc, docling): furniture is what repeats at the top or bottom of nearby pages.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from core.parsing.base import Page, PageRole, ranges
from core.text import HAN, HANGUL, KANA

EDGE_LINES = 3  # lines looked at, top and bottom of each page
WINDOW = 4  # pages either side in which a running head must repeat
SOFT_HYPHEN = "\ufffe"  # PDFium's mark for a hyphen it joined across a line end

_NON_LETTERS = re.compile(r"[\W\d_]+")
_ROMAN = re.compile(r"\b[ivxlcdm]+\b")
_PAGE_NUMBER = re.compile(r"^(page\s+)?(\d+|[ivxlcdm]+)(\s*(/|of)\s*\d+)?$", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+(?:[-'][^\W\d_]+)*")
_BROKEN = re.compile(r"([^\W\d_]+)(\ufffe|-\n)([^\W\d_]+) ?")
_LEADER = re.compile(r"(?:\.\s?){3,}\s*(\d+|[ivxlcdm]+)\s*$", re.IGNORECASE)
_ENDS_IN_PAGES = re.compile(r"[\s,](\d{1,4}|[ivxlc]+)(\s*[-–]\s*\d{1,4})?\s*$", re.IGNORECASE)
_CONTENTS_TITLE = re.compile(
    r"^\s*((table of )?contents|list of (tables|figures|examples)|目\s*录|目\s*次|表格清单|插图清单)\s*$", re.IGNORECASE
)
_INDEX_TITLE = re.compile(r"^\s*((appendix [a-z]\.?\s+)?([\w-]+\s+){0,3}index|索\s*引)\s*$", re.IGNORECASE)
_NUMBERED_HEADING = re.compile(r"^(\d+(?:\.\d+)+\.?|chapter \d+\.?|appendix [a-z]\.?)\s+\S.{0,90}$", re.IGNORECASE)


def clean_pages(
    raw: Sequence[str], outline: Sequence[tuple[int, str, int]], ocr_pages: Sequence[int]
) -> tuple[list[Page], list[str]]:
    """A PDF's page texts cleaned, each with its role and section path; and the notes for the file's report."""
    lines = remove_furniture([text.split("\n") for text in raw])
    roles: list[PageRole] = []
    for page_lines in lines:
        roles.append(page_role(page_lines, roles[-1] if roles else None))
    texts = ["\n".join(page_lines).strip("\n") for page_lines in lines]
    words = vocabulary(texts)
    texts = [join_cjk_lines(join_hyphens(text, words)) for text in texts]
    searched = [text if role == "text" else "" for text, role in zip(texts, roles, strict=True)]
    sections = outline_sections(searched, outline) if outline else numbered_sections(searched)
    pages = [
        Page(number, text, roles[number - 1], number in ocr_pages, sections[number - 1])
        for number, text in enumerate(texts, start=1)
    ]
    notes = [f"read by OCR: page(s) {ranges(ocr_pages)}"] if ocr_pages else []
    for role in ("contents", "index"):
        if numbers := [p.number for p in pages if p.role == role]:
            notes.append(f"{role} page(s) {ranges(numbers)} listed but kept out of search")
    if blank := [p.number for p in pages if p.role == "blank"]:
        notes.append(f"{len(blank)} page(s) without text: {ranges(blank)}")
    return pages, notes


def _key(line: str) -> str:
    """A line as furniture is compared: its words, less numbers (arabic or roman), punctuation and spacing.

    A line of one word keeps its numbers: "Chapter 1" and "Chapter 2" opening nearby pages are headings.
    """
    words = _ROMAN.sub(" ", _NON_LETTERS.sub(" ", line.lower())).split()
    return " ".join(words) if len(words) > 1 else " ".join(line.lower().split())


def remove_furniture(pages: Sequence[list[str]]) -> list[list[str]]:
    """Drop running heads, feet and page numbers: edge lines repeated on nearby pages, or a bare page number."""
    tops = [{_key(line) for line in lines[:EDGE_LINES]} for lines in pages]
    bottoms = [{_key(line) for line in lines[-EDGE_LINES:]} for lines in pages]
    cleaned: list[list[str]] = []
    for i, lines in enumerate(pages):
        lo, hi = max(0, i - WINDOW), min(len(pages), i + WINDOW + 1)
        needed = 2 if hi - lo > 2 else 1  # in a two-page document, once on the other page is enough

        def repeated(line: str, zones: list[set[str]]) -> bool:
            if _PAGE_NUMBER.match(line.strip()):
                return True
            key = _key(line)
            return sum(key in zones[j] for j in range(lo, hi) if j != i) >= needed  # noqa: B023

        start = 0
        while start < min(EDGE_LINES, len(lines)) and repeated(lines[start], tops):
            start += 1
        end = len(lines)
        while end > start and len(lines) - end < EDGE_LINES and repeated(lines[end - 1], bottoms):
            end -= 1
        cleaned.append(lines[start:end])
    return cleaned


def vocabulary(texts: Sequence[str]) -> Counter[str]:
    """Words of a document (lower case), hyphenated compounds as one word too."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w.lower() for w in _WORD.findall(_BROKEN.sub(" ", text)))  # halves of broken words are not words
    return counts


def join_hyphens(text: str, words: Counter[str]) -> str:
    """Join words hyphenated at a line end ("distri-bution"), keeping real compounds ("time-consuming").

    The document's own words decide: the joined form seen elsewhere joins, the hyphenated form seen
    elsewhere stays; otherwise two halves that are both words keep the hyphen, and a syllable split joins.
    """

    def fix(m: re.Match[str]) -> str:
        a, b = m.group(1), m.group(3)
        joined, compound = (a + b).lower(), f"{a}-{b}".lower()
        # Across a line break the word's second half moves up; the line break takes the space after it.
        tail = "\n" if m.group(2) == "-\n" else m.group(0)[m.end(3) - m.start() :]
        if words[joined] and not words[compound]:
            return a + b + tail
        if words[compound] or (len(a) > 1 and len(b) > 1 and words[a.lower()] and words[b.lower()]):
            return f"{a}-{b}{tail}"
        return a + b + tail

    text = _BROKEN.sub(fix, text)
    return text.replace(SOFT_HYPHEN, "-")


_CJK_CHAR = re.compile(f"[{KANA}{HAN}{HANGUL}]")
_CLOSES = "。！？：；!?:;"


def _width(line: str) -> int:
    return len(line) + len(_CJK_CHAR.findall(line))  # a CJK character is about two Latin ones wide


def join_cjk_lines(text: str) -> str:
    """Join Chinese (or Japanese, Korean) lines the typesetter broke mid-sentence, as the page's full lines show.

    CJK has no spaces, so a line break between two of its characters splits a word in two for the keyword
    analyser (jieba); only lines about as wide as the page's widest, ending mid-sentence, are joined.
    """
    lines = text.split("\n")
    widest = max((_width(line) for line in lines), default=0)
    out: list[str] = []
    for i, line in enumerate(lines):
        following = lines[i + 1] if i + 1 < len(lines) else ""
        full = widest > 0 and _width(line) >= 0.85 * widest
        if full and line and line[-1] not in _CLOSES and _CJK_CHAR.match(line[-1]) and _CJK_CHAR.match(following[:1]):
            out.append(line)
        else:
            out.append(line + "\n")
    return "".join(out)[:-1] if out else text


def page_role(lines: Sequence[str], previous: PageRole | None) -> PageRole:
    """Whether a page is running text, a table of contents (or list of tables) or an index."""
    body = [line for line in lines if line.strip()]
    if not body:
        return "blank"
    leaders = sum(bool(_LEADER.search(line)) for line in body)
    paged = sum(bool(_ENDS_IN_PAGES.search(line)) for line in body)
    titled = any(_CONTENTS_TITLE.match(line) for line in body[:3])
    indexed = any(_INDEX_TITLE.match(line) for line in body[:3]) or previous == "index"
    if indexed and len(body) >= 5 and paged >= 0.5 * len(body):
        return "index"
    if len(body) >= 5 and (leaders >= 0.3 * len(body) or (titled and paged >= 0.5 * len(body))):
        return "contents"
    if previous == "contents" and len(body) >= 3 and leaders >= 0.3 * len(body):
        return "contents"
    return "text"


def outline_sections(
    texts: Sequence[str], outline: Sequence[tuple[int, str, int]]
) -> list[tuple[tuple[int, str], ...]]:
    """Each page's (offset, section path) from a PDF outline: (level, title, page number) entries.

    A section starts at the line holding its title on its page (that line, with its number, names it:
    "6.3 What about sid?"), or at the page's top when the title is not found there.
    """
    by_page: dict[int, list[tuple[int, str]]] = {}
    for level, title, number in outline:
        by_page.setdefault(number, []).append((level, title))
    stack: list[tuple[int, str]] = []
    result: list[tuple[tuple[int, str], ...]] = []
    for number, text in enumerate(texts, start=1):
        sections: list[tuple[int, str]] = [(0, _path(stack))] if stack else []
        searched_from = 0
        for level, title in by_page.get(number, []):
            offset, name = _find_title(text, title, searched_from)
            searched_from = offset
            stack = [(lvl, t) for lvl, t in stack if lvl < level] + [(level, name)]
            sections = [s for s in sections if s[0] != offset] + [(offset, _path(stack))]
        result.append(tuple(sections))
    return result


def _path(stack: Sequence[tuple[int, str]]) -> str:
    return " > ".join(title for _, title in stack)


def _find_title(text: str, title: str, start: int) -> tuple[int, str]:
    """Offset of the line holding `title` at or after `start`, and that line as the section's name."""
    words = re.findall(r"\w+", title)
    if not words:
        return start, title
    # Words in order, anything between them: outlines write "-" and quotes where the page has "—" and ”.
    m = re.compile(r"\W+".join(re.escape(w) for w in words), re.IGNORECASE).search(text, start)
    if m is None:
        return start, title
    line_start = text.rfind("\n", 0, m.start()) + 1
    line_end = text.find("\n", m.end())
    line = " ".join(text[line_start : line_end if line_end >= 0 else len(text)].split())
    return line_start, line if len(line) <= len(title) + 16 else title


def numbered_sections(texts: Sequence[str]) -> list[tuple[tuple[int, str], ...]]:
    """Section paths from numbered heading lines ("2.1.3 Life with eternal upgrades"), for PDFs without an outline."""
    stack: list[tuple[int, str]] = []
    result: list[tuple[tuple[int, str], ...]] = []
    for text in texts:
        sections: list[tuple[int, str]] = [(0, _path(stack))] if stack else []
        offset = 0
        for line in text.splitlines(keepends=True):
            stripped = line.strip()
            m = _NUMBERED_HEADING.match(stripped)
            if m and not stripped.endswith((".", ",", ";", ":")) and len(stripped) <= 90:
                head = m.group(1).lower()
                level = 1 if head.startswith(("chapter", "appendix")) else head.rstrip(".").count(".") + 1
                stack = [(lvl, t) for lvl, t in stack if lvl < level] + [(level, stripped)]
                sections = [s for s in sections if s[0] != offset] + [(offset, _path(stack))]
            offset += len(line)
        result.append(tuple(sections))
    return result
