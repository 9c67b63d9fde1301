"""Word documents (.docx) with python-docx: paragraphs, headings as section paths, tables as text rows."""

from __future__ import annotations

import io
import re
import zipfile

from core.errors import CorruptFileError, FileTooLargeError, MismatchedFileTypeError

# What a .docx may expand to, by the sizes its zip directory declares (checked before anything is read):
# Word documents of hundreds of pages stay well under 100 MB of XML; a zip bomb declares gigabytes.
MAX_UNPACKED_BYTES = 200_000_000
MAX_RATIO = 200  # declared size over compressed size, for any one large member

_HEADING_STYLE = re.compile(r"^(heading|überschrift|titre|标题)\s*(\d)$", re.IGNORECASE)

_OTHER_PACKAGES = (
    ("xl/workbook.xml", "an Excel workbook (.xlsx)"),
    ("ppt/presentation.xml", "a PowerPoint presentation (.pptx)"),
    ("content.xml", "an OpenDocument file"),
)


def check_package(data: bytes, name: str) -> None:
    """Refuse a .docx that is not a Word package, or whose declared sizes would expand too far.

    Raises:
        CorruptFileError: not a zip, or a damaged one.
        MismatchedFileTypeError: another Office format, or no Word document inside.
        FileTooLargeError: the package declares more than MAX_UNPACKED_BYTES, or a member compresses
            suspiciously well (a zip bomb).

    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            members = package.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as e:
        raise CorruptFileError(
            f"{name} is not a valid Word document ({e}); open it in Word or LibreOffice, save it again as "
            ".docx, and upload that."
        ) from e
    names = {m.filename for m in members}
    if "word/document.xml" not in names:
        what = next((label for part, label in _OTHER_PACKAGES if part in names), "a ZIP archive without a document")
        raise MismatchedFileTypeError(
            f"{name} is named .docx but is {what}; upload it with its real extension, or save it as .docx or PDF."
        )
    declared = sum(m.file_size for m in members)
    bomb = next(
        (m for m in members if m.file_size > 10_000_000 and m.file_size > MAX_RATIO * max(m.compress_size, 1)), None
    )
    if declared > MAX_UNPACKED_BYTES or bomb is not None:
        raise FileTooLargeError(
            f"{name} would expand to {declared / 1e6:,.0f} MB of XML (a zip bomb, or a document far larger than "
            f"its {len(data) / 1e6:.1f} MB file); it was not opened. Save it again from Word, or as PDF, "
            f"and upload that (the limit is {MAX_UNPACKED_BYTES / 1e6:.0f} MB unpacked)."
        )


def read_docx(data: bytes, name: str) -> tuple[str, tuple[tuple[int, str], ...]]:
    """The document's text and its sections: (offset, heading path) where each heading's section starts."""
    check_package(data, name)
    from docx import Document
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
    except Exception as e:  # noqa: BLE001 - python-docx raises KeyError, ValueError, lxml errors and its own
        raise CorruptFileError(
            f"{name} is a damaged Word document ({type(e).__name__}: {e}); open it in Word or LibreOffice, "
            "save it again as .docx, and upload that."
        ) from e
    parts: list[str] = []
    sections: list[tuple[int, str]] = []
    stack: list[tuple[int, str]] = []
    offset = 0
    for block in blocks:
        if isinstance(block, Paragraph):
            text = block.text.strip()
            level = _heading_level(block)
            if level is not None and text:
                stack = [(lvl, t) for lvl, t in stack if lvl < level] + [(level, text)]
                path = " > ".join(t for _, t in stack)
                sections = [s for s in sections if s[0] != offset] + [(offset, path)]
        elif isinstance(block, Table):
            text = "\n".join(_row_text(row.cells) for row in block.rows)
        else:
            continue
        if text:
            parts.append(text)
            offset += len(text) + 2
    return "\n\n".join(parts), tuple(sections)


def _heading_level(paragraph: object) -> int | None:
    style = getattr(paragraph, "style", None)
    style_name = str(getattr(style, "name", "") or "")
    if style_name.lower() == "title":
        return 0
    m = _HEADING_STYLE.match(style_name)
    return int(m.group(2)) if m else None


def _row_text(cells: object) -> str:
    seen: list[str] = []
    for cell in cells:  # type: ignore[attr-defined]
        text = " ".join(cell.text.split())
        if not seen or seen[-1] != text:  # a merged cell repeats in every column it spans
            seen.append(text)
    return " | ".join(seen)
