"""Builders for test files: real PDFs (fpdf2, pypdf) and a counting embeddings wrapper."""

from __future__ import annotations

import io

from fpdf import FPDF
from langchain_core.embeddings import Embeddings
from pypdf import PdfWriter


def make_pdf(pages: list[str]) -> bytes:
    """A real text PDF, one string a page."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def encrypted_pdf(password: str = "s3cret") -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(["Top secret payroll figures."])))
    writer.encrypt(user_password=password, owner_password=password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def scanned_pdf(pages: int = 2) -> bytes:
    """Pages with no text layer, as a scanner produces."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)


class CountingEmbeddings(Embeddings):
    """Delegates to real embeddings and counts the texts it was asked to embed."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.documents_embedded = 0
        self.fail_after: int | None = None

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.fail_after is not None and self.documents_embedded + len(texts) > self.fail_after:
            raise RuntimeError("simulated crash while embedding")
        self.documents_embedded += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


def shown(label: str) -> str:
    """A Streamlit label as the browser shows it: Markdown's backslash escapes removed."""
    import re

    return re.sub(r"\\(.)", r"\1", label)


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every process in a process group (make and the streamlit it starts)."""
    import os
    from pathlib import Path

    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...; utime/stime at 11/12
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
