from __future__ import annotations

import pytest

from core import documents
from core.documents import markdown_sections, parse, split
from core.errors import (
    CorruptFileError,
    DocumentError,
    EmptyFileError,
    EncryptedFileError,
    FileTooLargeError,
    MismatchedFileTypeError,
    NoTextError,
    UnsafeFileNameError,
    UnsupportedFileError,
)
from core.samples import sample_uploads
from tests.helpers import PNG_BYTES, encrypted_pdf, make_pdf, scanned_pdf

# (file name, bytes, error class, words the message must contain: what is wrong, what to do)
BAD_FILES = [
    ("empty.txt", b"", EmptyFileError, ["empty", "upload"]),
    ("blank.md", b"  \n\n\t ", EmptyFileError, ["whitespace"]),
    ("empty.pdf", b"", EmptyFileError, ["empty"]),
    ("corrupt.pdf", b"%PDF-1.7\n1 0 obj <</Type /Catalog /Pages 9 0 R>> trailer garbage", CorruptFileError, ["export"]),
    ("noheader.pdf", b"just some words, not a pdf", CorruptFileError, ["not a PDF"]),
    ("locked.pdf", encrypted_pdf(), EncryptedFileError, ["password", "qpdf"]),
    ("scan.pdf", scanned_pdf(), NoTextError, ["no extractable text", "OCR"]),
    ("image.pdf", PNG_BYTES, MismatchedFileTypeError, ["PNG image", ".pdf"]),
    ("image.txt", PNG_BYTES, MismatchedFileTypeError, ["PNG image"]),
    ("archive.md", b"PK\x03\x04" + bytes(40), MismatchedFileTypeError, ["ZIP"]),
    ("binary.txt", b"abc\x00\x01\x02def", MismatchedFileTypeError, ["binary"]),
    ("slides.pptx", b"whatever", UnsupportedFileError, ["PDF, Markdown", ".pptx"]),
    ("README", b"no extension", UnsupportedFileError, ["no extension"]),
    ("../../etc/passwd.txt", b"root:x:0:0", UnsafeFileNameError, ["path", "rename"]),
    ("..\\evil.txt", b"x", UnsafeFileNameError, ["path"]),
    ("..", b"x", UnsafeFileNameError, ["path"]),
    ("bell\x07.txt", b"x", UnsafeFileNameError, ["control"]),
    ("", b"x", UnsafeFileNameError, ["no name"]),
]


@pytest.mark.parametrize(("filename", "data", "error", "words"), BAD_FILES, ids=[c[0] or "noname" for c in BAD_FILES])
def test_bad_files_are_refused_with_a_reason(filename: str, data: bytes, error: type, words: list[str]) -> None:
    with pytest.raises(error) as info:
        parse(data, filename)
    assert isinstance(info.value, DocumentError)
    for word in words:
        assert word.lower() in str(info.value).lower()


def test_file_over_the_size_limit_is_refused() -> None:
    with pytest.raises(FileTooLargeError, match="RAGTUNE_MAX_UPLOAD_MB"):
        parse(b"x" * 2048, "big.txt", max_bytes=1024)
    assert parse(b"x" * 1024, "fits.txt", max_bytes=1024).size_bytes == 1024


@pytest.mark.parametrize(
    ("data", "encoding", "expected"),
    [
        ("café crème".encode(), "utf-8", "café crème"),
        ("café crème".encode("utf-8-sig"), "utf-8-sig", "café crème"),
        ("café crème".encode("utf-16"), "utf-16", "café crème"),
        ("café – crème".encode("cp1252"), "cp1252", "café – crème"),
        (b"caf\xe9 \x81", "latin-1", "café \x81"),  # 0x81 is undefined in cp1252
    ],
)
def test_text_decodes_with_a_fallback(data: bytes, encoding: str, expected: str) -> None:
    doc = parse(data, "notes.txt")
    assert doc.encoding == encoding
    assert doc.pages[0].text == expected
    assert bool(doc.warnings) == (encoding not in ("utf-8", "utf-8-sig"))


def test_pdf_keeps_page_numbers_and_text() -> None:
    doc = parse(make_pdf(["Alpha page about otters.", "Beta page about herons."]), "birds.pdf")
    assert doc.kind == "pdf"
    assert [p.number for p in doc.pages] == [1, 2]
    assert "otters" in doc.pages[0].text and "herons" in doc.pages[1].text
    chunks = split(doc, chunk_size=800, chunk_overlap=100)
    assert [(c.page, "herons" in c.text) for c in chunks] == [(1, False), (2, True)]


def test_pdf_with_some_blank_pages_is_kept_with_a_warning() -> None:
    doc = parse(make_pdf(["Real text here.", ""]), "mixed.pdf")
    assert len(doc.pages) == 2
    assert any("without text" in w for w in doc.warnings)


def test_form_feeds_split_text_into_pages() -> None:
    doc = parse(b"first page\fsecond page", "two.txt")
    assert [(p.number, p.text) for p in doc.pages] == [(1, "first page"), (2, "second page")]


def test_markdown_splits_along_headings_but_not_inside_code() -> None:
    text = (
        "Intro line.\n# Guide\n\nWelcome.\n## Install\n\n```sh\n# not a heading\n```\n"
        "## Empty\n### Deep\n\nDeep text.\n"
    )
    sections = markdown_sections(text)
    assert [h for h, _, _ in sections] == [None, "Guide", "Guide > Install", "Guide > Empty > Deep"]
    install = next(text[s:e] for h, s, e in sections if h == "Guide > Install")
    assert "# not a heading" in install


def test_chunks_carry_identity_offsets_and_headings() -> None:
    body = "\n\n".join(f"Paragraph {i} about the tide tables of Port Vellan." * 3 for i in range(30))
    data = f"# Tides\n\n{body}\n\n## Currents\n\nThe current runs north.\n".encode()
    doc = parse(data, "tides.md")
    chunks = split(doc, chunk_size=400, chunk_overlap=50)
    assert len(chunks) > 5
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(len(c.text) <= 400 for c in chunks)
    for c in chunks:
        assert doc.pages[c.page - 1].text[c.start : c.end] == c.text
        assert c.doc_id == doc.doc_id == documents.document_id(data)
    assert chunks[-1].heading == "Tides > Currents"
    assert {c.heading for c in chunks[:-1]} == {"Tides"}


def test_ids_are_content_hashes_and_uuid5_per_chunk() -> None:
    a = documents.document_id(b"same bytes")
    assert a == documents.document_id(b"same bytes") != documents.document_id(b"other bytes")
    ids = {documents.point_id(a, i) for i in range(100)}
    assert len(ids) == 100
    assert documents.point_id(a, 3) == documents.point_id(a, 3)


def test_html_is_kept_as_text() -> None:
    data = b"<script>alert('x')</script> <b>bold</b> text"
    doc = parse(data, "page.txt")
    assert doc.pages[0].text == data.decode()


def test_every_sample_chunk_maps_back_to_its_page() -> None:
    for upload in sample_uploads():
        doc = parse(upload.data, upload.filename)
        for c in split(doc, chunk_size=800, chunk_overlap=120):
            assert doc.pages[c.page - 1].text[c.start : c.end] == c.text


def test_hard_wrapped_pdf_text_is_cut_at_sentence_ends() -> None:
    """pypdf gives wrapped lines and no blank lines; chunks must still end where sentences do."""
    sentences = [f"Rule {i} says the harbour gate number {i} opens at {i % 12 + 1} o'clock sharp." for i in range(40)]
    doc = parse(make_pdf([" ".join(sentences)]), "rules.pdf")
    assert "\n\n" not in doc.pages[0].text and doc.pages[0].text.count("\n") > 10
    chunks = split(doc, chunk_size=400, chunk_overlap=60)
    assert len(chunks) > 4
    assert all(c.text.rstrip().endswith(".") for c in chunks[:-1])
