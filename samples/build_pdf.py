"""Rebuild the sample PDFs from their `=== Title` sources (one section a page).

- samples/knowledge_base/employee_handbook.pdf from samples/source/employee_handbook.txt;
- samples/holdout_pdf/knowledge_base/hearthcell_hc10_manual.pdf (held out) from
  samples/holdout_pdf/source/hearthcell_hc10_manual.txt.

Run: .venv/bin/python samples/build_pdf.py
(fpdf2 is a dev dependency; the app itself only reads the PDFs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Book:
    """One PDF: its source, its target, the running header, metadata and a fixed creation date."""

    source: Path
    target: Path
    header: str
    title: str
    author: str
    # A fixed date: the same source gives the same bytes.
    created: datetime


HANDBOOK = Book(
    HERE / "source" / "employee_handbook.txt",
    HERE / "knowledge_base" / "employee_handbook.pdf",
    "Brackenridge Tidal Systems - Employee Handbook, edition 9",
    "Employee Handbook",
    "Brackenridge Tidal Systems",
    datetime(2026, 1, 14, tzinfo=UTC),
)
HEARTHCELL = Book(
    HERE / "holdout_pdf" / "source" / "hearthcell_hc10_manual.txt",
    HERE / "holdout_pdf" / "knowledge_base" / "hearthcell_hc10_manual.pdf",
    "Vellacourt Energy Systems - Hearthcell HC-10 User Manual, VES-HC10-UM rev. F",
    "Hearthcell HC-10 User Manual",
    "Vellacourt Energy Systems",
    datetime(2026, 2, 9, tzinfo=UTC),
)
BOOKS = (HANDBOOK, HEARTHCELL)


def sections(text: str) -> list[tuple[str, str]]:
    """Split the source into (title, body) pairs, one per page."""
    parts = []
    for block in text.split("=== ")[1:]:
        title, _, body = block.partition("\n")
        parts.append((title.strip(), body.strip()))
    return parts


class Paged(FPDF):
    def __init__(self, header_text: str) -> None:
        super().__init__(format="A4")
        self.header_text = header_text

    def header(self) -> None:
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 8, self.header_text, align="R")
        self.ln(12)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", "", 8)
        self.cell(0, 10, f"Page {self.page_no()}", align="C")


def build(book: Book = HANDBOOK, target: Path | None = None) -> Path:
    """Write `book` to `target` (its own target by default) and return the path."""
    target = target or book.target
    pdf = Paged(book.header)
    pdf.set_creation_date(book.created)
    pdf.set_title(book.title)
    pdf.set_author(book.author)
    pdf.set_auto_page_break(auto=True, margin=20)
    for title, body in sections(book.source.read_text(encoding="utf-8")):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        pdf.multi_cell(0, 9, title)
        pdf.ln(3)
        pdf.set_font("Helvetica", "", 11)
        for paragraph in body.split("\n\n"):
            pdf.multi_cell(0, 6, paragraph)
            pdf.ln(3)
    target.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(target))
    return target


if __name__ == "__main__":
    for b in BOOKS:
        print(build(b))
