"""Rebuild samples/knowledge_base/employee_handbook.pdf from samples/source/employee_handbook.txt.

Each `=== Title` section becomes one page. Run: .venv/bin/python samples/build_pdf.py
(fpdf2 is a dev dependency; the app itself only reads the PDF).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "source" / "employee_handbook.txt"
TARGET = HERE / "knowledge_base" / "employee_handbook.pdf"


def sections(text: str) -> list[tuple[str, str]]:
    """Split the source into (title, body) pairs, one per page."""
    parts = []
    for block in text.split("=== ")[1:]:
        title, _, body = block.partition("\n")
        parts.append((title.strip(), body.strip()))
    return parts


class Handbook(FPDF):
    def header(self) -> None:
        self.set_font("Helvetica", "I", 8)
        self.cell(0, 8, "Brackenridge Tidal Systems - Employee Handbook, edition 9", align="R")
        self.ln(12)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", "", 8)
        self.cell(0, 10, f"Page {self.page_no()}", align="C")


def build(source: Path = SOURCE, target: Path = TARGET) -> Path:
    pdf = Handbook(format="A4")
    # A fixed date: the same source gives the same bytes.
    pdf.set_creation_date(datetime(2026, 1, 14, tzinfo=UTC))
    pdf.set_title("Employee Handbook")
    pdf.set_author("Brackenridge Tidal Systems")
    pdf.set_auto_page_break(auto=True, margin=20)
    for title, body in sections(source.read_text(encoding="utf-8")):
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
    print(build())
