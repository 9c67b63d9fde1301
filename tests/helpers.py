"""Builders for test files: real PDFs (fpdf2, pypdf), a counting embeddings wrapper, an Ollama for embeddings,
and the app opened in AppTest."""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pypdfium2
import pytest
from fpdf import FPDF
from langchain_core.embeddings import Embeddings
from pypdf import PdfWriter
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def session_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder this test session's xdist workers all see (under one process, its own temp folder).

    What one worker makes there under a `filelock.FileLock` (a trained adapter, a bench run) the others read
    instead of making it again: pytest-xdist gives a module's tests to several workers, each with its own
    module fixtures (its `xdist_group` marks have no effect under pytest 9: they set a node id pytest no longer
    reads).
    """
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def open_app(page: str | None = None, *, timeout: float = 120) -> AppTest:
    """The whole app (navigation, sidebar) in a new AppTest session, run once and switched to `page` if given.

    `page` as `st.switch_page` takes it: "app_pages/documents.py". A new call is a new browser session on the
    same DATA_DIR, as a refresh is.
    """
    from streamlit.testing.v1 import AppTest  # not at import: conftest imports this module for every test

    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at


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


def fake_vector(text: str) -> list[float]:
    """Deterministic 8-dimensional vector: letter counts, so similar texts get similar vectors."""
    v = [float(text.lower().count(ch)) + 0.01 for ch in "aeiorstn"]
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


# The models of the Ollama below (/api/tags, /api/show): a chat model, two embedding models (one as an
# Ollama too old to report capabilities shows it, known by its BERT family), one /api/show cannot describe.
OLLAMA_MODELS = {
    "llama3.2:1b": ("llama", ["completion", "tools"]),
    "bge-m3:latest": ("bert", ["embedding"]),
    "nomic-embed-text:latest": ("nomic-bert", None),
    "broken:latest": ("llama", "missing"),
}
EMBEDDING_MODEL = "bge-m3"  # the one that embeds, by either name (`bge-m3`, `bge-m3:latest`)


def _tag(name: str, family: str) -> dict[str, object]:
    details = {"format": "gguf", "family": family, "parameter_size": "1B", "quantization_level": "F16"}
    return {
        "name": name,
        "model": name,
        "modified_at": "2026-10-01T10:00:00Z",
        "size": 1,
        "digest": "0" * 64,
        "details": details,
    }


def serve_ollama_embeddings(httpserver: HTTPServer) -> list[dict[str, object]]:
    """Ollama's `/api/tags`, `/api/show` and `/api/embed` (bge-m3 only); returns the embed requests as they come."""
    requests: list[dict[str, object]] = []

    def embed(request: Request) -> Response:
        body = json.loads(request.data)
        requests.append(body)
        if str(body["model"]).removesuffix(":latest") != EMBEDDING_MODEL:
            error = {"error": f'model "{body["model"]}" not found, try pulling it first'}
            return Response(json.dumps(error), status=404, content_type="application/json")
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        answer = {"model": body["model"], "embeddings": [fake_vector(t) for t in inputs], "total_duration": 1000}
        return Response(json.dumps(answer), content_type="application/json")

    def show(request: Request) -> Response:
        family, capabilities = OLLAMA_MODELS[json.loads(request.data)["model"]]
        if capabilities == "missing":
            return Response(json.dumps({"error": "model not found"}), status=404, content_type="application/json")
        body: dict[str, object] = {
            "modelfile": "",
            "parameters": "",
            "template": "",
            "details": {"family": family},
            "model_info": {"general.architecture": family},
        }
        if capabilities is not None:
            body["capabilities"] = capabilities
        return Response(json.dumps(body), content_type="application/json")

    tags = {"models": [_tag(name, family) for name, (family, _) in OLLAMA_MODELS.items()]}
    httpserver.expect_request("/api/tags", method="GET").respond_with_json(tags)
    httpserver.expect_request("/api/show", method="POST").respond_with_handler(show)
    httpserver.expect_request("/api/embed", method="POST").respond_with_handler(embed)
    return requests


# Real PDFs, cut from Debian packages (tests/fixtures/real/LICENSE.md says where from and under what licence).
REAL = Path(__file__).resolve().parent / "fixtures" / "real"


def real(name: str) -> bytes:
    return (REAL / name).read_bytes()


def scanned_pages(count: int) -> bytes:
    """The scanned fixture page `count` times over."""
    source = pypdfium2.PdfDocument(real("debian-reference-scanned.pdf"))
    out = pypdfium2.PdfDocument.new()
    for _ in range(count):
        out.import_pages(source)
    buffer = io.BytesIO()
    out.save(buffer)
    return buffer.getvalue()


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in members.items():
            package.writestr(name, data)
    return buffer.getvalue()


def zip_bomb() -> bytes:
    """A small .docx whose zip directory declares word/document.xml as 3 GB (it is read from there first)."""
    data = bytearray(zip_of({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>"}))
    entry = data.index(b"PK\x01\x02", data.index(b"word/document.xml") - 60)  # the central directory's entry
    while data[entry + 46 : entry + 46 + 17] != b"word/document.xml":
        entry = data.index(b"PK\x01\x02", entry + 4)
    data[entry + 24 : entry + 28] = (3_000_000_000).to_bytes(4, "little")  # uncompressed size
    return bytes(data)


HTML_PAGE = b"""<!doctype html><html><head><title>Harbour</title><script>alert('owned')</script>
<style>body{color:red}</style></head><body>
<nav class="navbar"><a href="/">Home</a> <a href="/next">Next chapter</a></nav>
<div class="sidebar">Related pages: Lighthouses</div>
<main><h1>Harbour guide</h1><p>The pier opens at <b>06:00</b>.</p>
<img src=x onerror="alert(1)"><h2>Fees</h2><p>Mooring costs 12 euros a night.</p>
<table><tr><th>Boat</th><th>Fee</th></tr><tr><td>Dinghy</td><td>4</td></tr></table></main>
<footer>Copyright the harbour board</footer></body></html>"""
