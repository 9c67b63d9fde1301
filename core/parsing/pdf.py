"""PDF pages as text with PDFium: reading order across columns, OCR for pages that are only images.

PDFium (Chrome's PDF engine) keeps words apart where pypdf glued them: on a 73-page DocBook manual pypdf
glued 1,966 of 9,505 words, PDFium 2 of 26,403 (issue 19). pypdf stays only in the tests, to write an
encrypted PDF, which PDFium cannot do.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from core.errors import CorruptFileError, EncryptedFileError, NoTextError, OcrLimitError
from core.parsing import ocr
from core.parsing.base import OcrLimits, Reading

log = logging.getLogger(__name__)

# A page with fewer characters than this in its text layer, and an image on it, is read by OCR.
MIN_TEXT_CHARS = 20
# The narrowest white strip between two columns, in points (word spaces are 2-4 pt).
GUTTER = 8.0


@dataclass(frozen=True)
class PdfText:
    """A PDF's pages as raw text (lines apart), which of them OCR read, and its outline."""

    pages: list[str]
    ocr_pages: list[int]
    outline: list[tuple[int, str, int]]  # (level, title, page number)


def open_pdf(data: bytes, name: str) -> pdfium.PdfDocument:
    """Open a PDF with PDFium, translating its errors.

    Raises:
        EncryptedFileError: a password is needed, or the security handler is not supported.
        CorruptFileError: PDFium cannot read it.

    """
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as e:
        code = getattr(e, "err_code", None)
        if code == pdfium_c.FPDF_ERR_PASSWORD:
            raise EncryptedFileError(
                f"{name} is password-protected; save an unprotected copy "
                "(e.g. `qpdf --decrypt in.pdf out.pdf`) and upload that."
            ) from e
        if code == pdfium_c.FPDF_ERR_SECURITY:
            raise EncryptedFileError(
                f"{name} is encrypted with a scheme this install cannot open; save an unprotected copy and upload that."
            ) from e
        raise CorruptFileError(f"{name} is damaged and cannot be read ({e}); export it to PDF again and upload.") from e


def read_pdf(data: bytes, name: str, *, limits: OcrLimits, reading: Reading) -> PdfText:
    """Every page's text; pages without a text layer but with an image go through OCR, page by page.

    Raises:
        DocumentError: damaged, encrypted, no pages, no text at all, or OCR over the limits.
        ParseCancelled: the user stopped the upload between two pages.

    """
    pdf = open_pdf(data, name)
    try:
        count = len(pdf)
        if count == 0:
            raise CorruptFileError(f"{name} has no pages; export it to PDF again and upload.")
        texts: list[str] = []
        scans: list[int] = []
        for index in range(count):
            reading.page(index, count, f"Reading {name}: page {index + 1} of {count}")
            page = pdf[index]
            try:
                text = page_text(page)
                if len(text.strip()) < MIN_TEXT_CHARS and _has_image(page):
                    scans.append(index)
            except pdfium.PdfiumError as e:
                log.warning("%s page %d: %s", name, index + 1, e)
                text = ""
            finally:
                page.close()
            texts.append(text)
        if scans:
            _ocr_pages(pdf, name, scans, texts, limits, reading)
        if not any(t.strip() for t in texts):
            raise NoTextError(
                f"{name} has {count} page(s) but no extractable text, and no page images for OCR to read; "
                "export it again with its text, or upload the scanned pages as PNG or JPEG images."
            )
        return PdfText(texts, [i + 1 for i in scans], _outline(pdf, count))
    finally:
        pdf.close()


def _ocr_pages(
    pdf: pdfium.PdfDocument, name: str, scans: list[int], texts: list[str], limits: OcrLimits, reading: Reading
) -> None:
    if len(scans) > limits.max_pages:
        raise OcrLimitError(
            f"{name} has {len(scans)} scanned page(s) to read by OCR, over the limit of {limits.max_pages} pages "
            f"(and {limits.max_seconds:.0f} seconds) per file; split it into smaller files, or raise "
            "RAGTUNE_OCR_MAX_PAGES."
        )
    started = reading.elapsed
    for done, index in enumerate(scans):
        spent = reading.elapsed - started
        if spent > limits.max_seconds:
            raise OcrLimitError(
                f"OCR of {name} took {spent:.0f} s for {done} of {len(scans)} scanned pages, over the limit of "
                f"{limits.max_seconds:.0f} seconds (and {limits.max_pages} pages) per file; split it into smaller "
                "files, or raise RAGTUNE_OCR_MAX_SECONDS."
            )
        reading.page(done, len(scans), f"OCR of {name}: page {index + 1} ({done + 1} of {len(scans)} scanned)")
        page = pdf[index]
        try:
            bitmap = page.render(scale=ocr.OCR_WIDTH / page.get_width())
            texts[index] = ocr.read_image(bitmap.to_numpy())
        finally:
            page.close()


def _has_image(page: pdfium.PdfPage) -> bool:
    return any(True for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2))


def _outline(pdf: pdfium.PdfDocument, count: int) -> list[tuple[int, str, int]]:
    entries: list[tuple[int, str, int]] = []
    try:
        for bookmark in pdf.get_toc(max_depth=6):
            dest = bookmark.get_dest()
            index = dest.get_index() if dest is not None else None
            title = " ".join(bookmark.get_title().split())
            if index is not None and 0 <= index < count and title:
                entries.append((bookmark.level, title, index + 1))
    except pdfium.PdfiumError as e:  # a broken outline only costs the section paths
        log.warning("outline unreadable: %s", e)
    return entries


def page_text(page: pdfium.PdfPage) -> str:
    """A page's text with lines apart, columns read one after the other."""
    textpage = page.get_textpage()
    try:
        width, height = page.get_size()
        regions = column_regions(_rects(textpage), width, height)
        if regions is None:
            text = textpage.get_text_range()
        else:
            text = "\n".join(textpage.get_text_bounded(*region) for region in regions)
    finally:
        textpage.close()
    return str(text).replace("\r\n", "\n").replace("\r", "\n")


Rect = tuple[float, float, float, float]  # left, bottom, right, top


def _rects(textpage: pdfium.PdfTextPage) -> list[Rect]:
    rects = [textpage.get_rect(i) for i in range(textpage.count_rects())]
    return [r for r in rects if r[2] - r[0] > 1]


def _line_widths(rects: Sequence[Rect]) -> list[float]:
    """Widths of the lines that text runs make (runs on one baseline, within 2 pt, are one line)."""
    lines: list[list[float]] = []  # bottom, left, right
    for left, bottom, right, _top in sorted(rects, key=lambda r: r[1]):
        if lines and abs(bottom - lines[-1][0]) <= 2:
            lines[-1][1] = min(lines[-1][1], left)
            lines[-1][2] = max(lines[-1][2], right)
        else:
            lines.append([bottom, left, right])
    return [right - left for _, left, right in lines]


def column_regions(rects: Sequence[Rect], width: float, height: float) -> list[Rect] | None:
    """Regions to read in order on a two-column page (above, left, right, below), or None for one column.

    A gutter is a vertical line in the middle of the page that no text line crosses, with lines of
    running text (not table cells: most lines fill their column) side by side on both sides of it.
    """
    if len(rects) < 10:
        return None
    xs = np.arange(int(width * 0.35), int(width * 0.65), 2, dtype=float)
    if xs.size == 0:
        return None
    box = np.asarray(rects, dtype=float)
    crossing = ((box[None, :, 0] < xs[:, None] + GUTTER / 2) & (box[None, :, 2] > xs[:, None] - GUTTER / 2)).sum(axis=1)
    best = int(np.argmin(crossing))  # the first of the least crossed, as a scan from the left finds it
    if crossing[best] > 0.15 * len(rects):
        return None
    gutter = float(xs[best])
    left = [r for r in rects if r[2] <= gutter]
    right = [r for r in rects if r[0] >= gutter]
    if len(left) < 5 or len(right) < 5:
        return None
    for side, lo, hi in ((left, min(r[0] for r in left), gutter), (right, gutter, max(r[2] for r in right))):
        span = hi - lo
        if span <= 0 or statistics.median(_line_widths(side)) < 0.6 * span:
            return None
    top = min(max(r[3] for r in left), max(r[3] for r in right))
    bottom = max(min(r[1] for r in left), min(r[1] for r in right))
    if top - bottom < 0.2 * height:  # side by side for a few lines only: a table or a figure, not columns
        return None
    # Text across the gutter between the columns' tops and bottoms: one column with a table or a gap in it.
    if any(r[0] < gutter < r[2] and bottom < (r[1] + r[3]) / 2 < top for r in rects):
        return None
    col_top = max(max(r[3] for r in left), max(r[3] for r in right)) + 0.5
    col_bottom = min(min(r[1] for r in left), min(r[1] for r in right)) - 0.5
    return [
        (0.0, col_top, width, height),
        (0.0, col_bottom, gutter, col_top),
        (gutter, col_bottom, width, col_top),
        (0.0, 0.0, width, col_bottom),
    ]
