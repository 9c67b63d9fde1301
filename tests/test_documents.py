from __future__ import annotations

import io
import re

import pypdfium2 as pdfium
import pytest
from docx import Document
from fpdf import FPDF
from pypdf import PdfWriter

from core import documents
from core.documents import OcrLimits, markdown_sections, parse, split
from core.errors import (
    CorruptFileError,
    DocumentError,
    EmptyFileError,
    EncryptedFileError,
    FileTooLargeError,
    MismatchedFileTypeError,
    NoTextError,
    OcrLimitError,
    ParseCancelled,
    UnsafeFileNameError,
    UnsupportedFileError,
)
from core.parsing import layout
from core.samples import sample_uploads
from tests.helpers import (
    HTML_PAGE,
    PNG_BYTES,
    encrypted_pdf,
    make_pdf,
    real,
    scanned_pages,
    scanned_pdf,
    zip_bomb,
    zip_of,
)

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
    ("slides.pptx", b"whatever", UnsupportedFileError, ["PDF, Word", ".pptx"]),
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


@pytest.fixture(scope="module")
def reference() -> documents.ParsedDocument:
    """Debian Reference pages v (contents) and 1-3 (chapter 1), with their outline."""
    return parse(real("debian-reference-pages.pdf"), "debian-reference.pdf")


def test_real_pdf_reads_with_words_apart_and_hyphenation_joined(reference: documents.ParsedDocument) -> None:
    text = "\n".join(p.text for p in reference.pages)
    assert "I think learning a computer system is like learning a new foreign language." in text
    # PDFium joins "adminis-" / "tration" across the line and marks the hyphen; the document decides.
    assert (
        "perform the following system administration tasks." in text
        and "start the command shell directly on the" in text
    )
    assert "\ufffe" not in text and "adminis-tration" not in text


@pytest.mark.parametrize(
    ("broken", "elsewhere", "expected"),
    [
        ("distri\ufffebution", "", "distribution"),  # a syllable split joins
        ("in\ufffestalled", "installed twice", "installed"),  # the joined word is the document's
        ("time\ufffeconsuming", "it is time-consuming", "time-consuming"),  # so is the compound
        ("debian\ufffesecurity", "debian security", "debian-security"),  # two words: the hyphen stays
        ("distri-\nbution of it", "", "distribution\nof it"),  # a hyphen and a line break, as OCR reads
    ],
)
def test_hyphens_at_line_ends_are_joined_by_the_documents_own_words(broken: str, elsewhere: str, expected: str) -> None:
    words = layout.vocabulary([broken, elsewhere])
    assert layout.join_hyphens(broken, words) == expected


def test_running_heads_and_page_numbers_are_removed(reference: documents.ParsedDocument) -> None:
    for page in reference.pages:
        assert "Debian Reference" not in page.text.splitlines()[0]
        assert not re.search(r"\b\d+ / 233\b", page.text)
    assert reference.pages[1].text.startswith("Chapter 1\nGNU/Linux tutorials")


def test_contents_page_is_listed_but_kept_out_of_retrieval(reference: documents.ParsedDocument) -> None:
    assert [p.role for p in reference.pages] == ["contents", "text", "text", "text"]
    assert reference.pages_with("contents") == (1,)
    assert any("contents page(s) 1" in w for w in reference.warnings)
    chunks = split(reference, chunk_size=800, chunk_overlap=120)
    assert {c.page for c in chunks} == {2, 3, 4}
    assert not any(". . . ." in c.text for c in chunks)


def test_chunks_carry_their_section_path_from_the_outline(reference: documents.ParsedDocument) -> None:
    chunks = split(reference, chunk_size=800, chunk_overlap=120)
    root = next(c for c in chunks if "The root account is also called superuser" in c.text)
    assert root.heading == "GNU/Linux tutorials > 1.1 Console basics > 1.1.3 The root account"
    first = next(c for c in chunks if "I think learning a computer system" in c.text)
    assert first.heading == "GNU/Linux tutorials"
    assert first.text.startswith("Chapter 1")  # a heading line is not a chunk of its own
    for c in chunks:
        assert reference.pages[c.page - 1].text[c.start : c.end] == c.text


def test_two_column_page_reads_one_column_after_the_other() -> None:
    """groff mom's two-column article: the left column ends before the right one starts."""
    [page] = parse(real("groff-mom-two-columns.pdf"), "article.pdf").pages
    left_end = page.text.index("*Labore diam nonumy eirmod tempor, invidunt ut labore et dolore")
    right_start = page.text.index("Stet clita kasd gubergren no sea. Takimat")
    assert left_end < right_start


def test_two_columns_drawn_line_by_line_are_still_read_column_by_column() -> None:
    """Some producers draw both columns' lines row by row; reading order must not interleave them."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    pdf.add_page()
    for row in range(30):
        y = 20 + row * 8
        pdf.text(15, y, f"Left column line {row} tells of the harbour and the tide.")
        pdf.text(110, y, f"Right column line {row} tells of the lighthouse keeper.")
    [page] = parse(bytes(pdf.output()), "columns.pdf").pages
    lines = [line for line in page.text.splitlines() if line.strip()]
    assert [line.split()[0] for line in lines] == ["Left"] * 30 + ["Right"] * 30
    assert lines[29].startswith("Left column line 29") and lines[30].startswith("Right column line 0")


def test_reading_reports_pages_and_stops_between_them() -> None:
    seen: list[tuple[int, int]] = []
    doc = parse(real("debian-reference-pages.pdf"), "r.pdf", progress=lambda d, t, _m: seen.append((d, t)))
    assert seen == [(0, 4), (1, 4), (2, 4), (3, 4)] and len(doc.pages) == 4
    with pytest.raises(ParseCancelled, match="page 3 of 4"):
        parse(real("debian-reference-pages.pdf"), "r.pdf", should_stop=lambda: len(seen) > 5,
              progress=lambda d, t, _m: seen.append((d, t)))  # fmt: skip


def test_scanned_pdf_over_the_ocr_page_limit_is_refused_before_any_ocr() -> None:
    with pytest.raises(OcrLimitError) as info:
        parse(scanned_pages(3), "scan.pdf", ocr=OcrLimits(max_pages=2, max_seconds=300))
    assert "3 scanned page(s)" in str(info.value) and "limit of 2 pages" in str(info.value)
    assert "RAGTUNE_OCR_MAX_PAGES" in str(info.value)


def test_ocr_over_the_time_limit_is_refused_with_the_limit_named() -> None:
    with pytest.raises(OcrLimitError, match="limit of 0 seconds.*RAGTUNE_OCR_MAX_SECONDS"):
        parse(scanned_pages(2), "scan.pdf", ocr=OcrLimits(max_pages=5, max_seconds=0))


SCANNED_PAGE_TEXT = """Debian Reference 104 / 233
• Linux Networking-concepts HOWTO
• Linux 2.4 Packet Filtering HOWTO
• Linux 2.4 NAT HOWTO
Tip
Although these were written for Linux 2.4, both iptables(8) command and netfilter kernel function apply for Linux
2.6 and 3.x kernel series."""


@pytest.mark.slow
def test_scanned_page_is_read_by_ocr() -> None:
    """Debian Reference page 104, rendered to a grey JPEG and back into a PDF: no text layer."""
    doc = parse(real("debian-reference-scanned.pdf"), "scan.pdf")
    assert doc.ocr_pages == (1,) and any("read by OCR: page(s) 1" in w for w in doc.warnings)
    text = doc.pages[0].text
    for words in ("Packet Filtering HOWTO", "NAT HOWTO", "iptables(8) command and netfilter"):
        assert words in text
    # The page's own text layer, before it was scanned: most of its words come back as they were.
    right = [w for w in SCANNED_PAGE_TEXT.split() if w in text.split()]
    assert len(right) >= 0.8 * len(SCANNED_PAGE_TEXT.split())


@pytest.mark.slow
def test_page_image_upload_is_read_by_ocr() -> None:
    page = pdfium.PdfDocument(real("debian-reference-scanned.pdf"))[0]
    buffer = io.BytesIO()
    page.render(scale=1).to_pil().save(buffer, "PNG")
    doc = parse(buffer.getvalue(), "scan.png")
    assert doc.kind == "image" and doc.ocr_pages == (1,)
    assert "Packet Filtering HOWTO" in doc.pages[0].text


def make_docx() -> bytes:
    document = Document()
    document.add_heading("Harbour manual", level=1)
    document.add_paragraph("The harbour of Port Vellan opens at dawn.")
    document.add_heading("Tides", level=2)
    document.add_paragraph("High tide comes twice a day. " * 5)
    table = document.add_table(rows=2, cols=3)
    for row, cells in zip(table.rows, [("Gate", "Opens", "Closes"), ("North", "06:00", "22:00")], strict=True):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    document.add_heading("Pilots", level=2)
    document.add_paragraph("Pilots board ships beyond the breakwater. " * 4)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_docx_headings_become_section_paths_and_tables_text_rows() -> None:
    doc = parse(make_docx(), "harbour.docx")
    assert doc.kind == "docx" and len(doc.pages) == 1
    assert "Gate | Opens | Closes\nNorth | 06:00 | 22:00" in doc.pages[0].text
    chunks = split(doc, chunk_size=200, chunk_overlap=20)
    by_text = {c.heading: c.text for c in chunks}
    assert "North | 06:00 | 22:00" in by_text["Harbour manual > Tides"]
    assert "breakwater" in by_text["Harbour manual > Pilots"]
    for c in chunks:
        assert doc.pages[0].text[c.start : c.end] == c.text


def test_html_keeps_the_main_text_with_headings_and_drops_scripts_and_navigation() -> None:
    doc = parse(HTML_PAGE, "harbour.html")
    text = doc.pages[0].text
    assert doc.kind == "html"
    assert "The pier opens at **06:00**." in text and "Mooring costs 12 euros a night." in text
    assert "| Dinghy | 4 |" in text
    for gone in ("alert", "owned", "color:red", "Next chapter", "Related pages", "Copyright", "onerror"):
        assert gone not in text
    chunks = split(doc, chunk_size=800, chunk_overlap=0)
    assert [c.heading for c in chunks] == ["Harbour guide", "Harbour guide > Fees"]


NEW_FORMAT_BAD_FILES = [
    ("corrupt.docx", b"PK\x03\x04" + bytes(60), CorruptFileError, ["not a valid Word document", "save it again"]),
    ("sheet.docx", zip_of({"xl/workbook.xml": b"<workbook/>"}), MismatchedFileTypeError, ["Excel workbook", ".xlsx"]),
    ("pdf.docx", b"%PDF-1.7 not a word file", MismatchedFileTypeError, ["PDF document"]),
    ("bomb.docx", zip_bomb(), FileTooLargeError, ["3,000 MB", "not opened"]),
    ("empty.docx", zip_of({"word/document.xml": b"<w:document/>"}), CorruptFileError, ["damaged Word document"]),
    ("photo.png", PNG_BYTES, CorruptFileError, ["not a readable image", "PNG or JPEG"]),
    ("photo.jpg", b"GIF89a" + bytes(20), MismatchedFileTypeError, ["GIF image"]),
    (
        "nav.html",
        b"<html><body><nav>Home | Next</nav><script>x()</script></body></html>",
        EmptyFileError,
        ["no main text"],
    ),  # fmt: skip
    ("binary.html", b"\x7fELF\x02\x01\x01", MismatchedFileTypeError, ["program binary"]),
]


@pytest.mark.parametrize(
    ("filename", "data", "error", "words"), NEW_FORMAT_BAD_FILES, ids=[c[0] for c in NEW_FORMAT_BAD_FILES]
)
def test_bad_word_html_and_image_files_are_refused_with_a_reason(
    filename: str, data: bytes, error: type, words: list[str]
) -> None:
    with pytest.raises(error) as info:
        parse(data, filename)
    for word in words:
        assert word.lower() in str(info.value).lower()


def test_chinese_lines_broken_mid_sentence_are_joined_but_headings_stay_apart() -> None:
    text = (
        "1.1.6 虚拟控制台\n"
        "在默认的 Debian 系统中，有 6 个可切换的类字符控制台，每一个字符控制台都允许独立登\n"
        "录账户并提供多用户环境。这个多用户环境是伟大的 Unix 的特性，很容易上瘾。\n"
        "警告\n"
        "永远不要在显示管理器的提示符下输入 root 来使用 root 账户启动显示或者会话管理器。"
    )
    joined = layout.join_cjk_lines(text)
    assert "独立登录账户" in joined  # the word the line break split
    assert joined.startswith("1.1.6 虚拟控制台\n在默认") and "上瘾。\n警告\n永远" in joined


# Lines of real pages: libtasn1's manual (GNU FDL 1.3, Debian package libtasn1-doc), its index pages 35-36, and
# the Debian Reference (GPL-2+), a table page whose rows end in numbers too.
CONCEPT_INDEX = """Concept Index
A
asn1Coding program . . . . . . . . . . . . . . . . . . . . . . . . . . . . 5
asn1Decoding program . . . . . . . . . . . . . . . . . . . . . . . . . . 7
asn1Parser program . . . . . . . . . . . . . . . . . . . . . . . . . . . . . 5
ASN.1 schema . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . 2
F
FDL, GNU Free Documentation License . . . . . . . . 24
Future developments . . . . . . . . . . . . . . . . . . . . . . . . . . . . 4"""
FUNCTION_INDEX_GOES_ON = """asn1_der_decoding_startEnd . . . . . . . . . . . . . . . . . . 19
asn1_der_decoding2 . . . . . . . . . . . . . . . . . . . . . . . . . . . . . 18
asn1_dup_node . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . . 12
asn1_encode_simple_der . . . . . . . . . . . . . . . . . . . . . . . 21
asn1_expand_any_defined_by . . . . . . . . . . . . . . . . . . 19"""
TABLE_PAGE = """package popcon size description
ghostscript V:184, I:569 195 The GPL Ghostscript PostScript/PDF interpreter
ghostscript-x V:3, I:39 87 GPL Ghostscript PostScript/PDF interpreter - X display support
libpoppler102 V:29, I:316 4274 PDF rendering library based on xpdf PDF viewer
libpoppler-glib8 V:281, I:494 484 PDF rendering library (GLib-based shared library)
poppler-data V:107, I:598 13086 CMaps for PDF rendering library (for CJK support: Adobe-*)
Table 11.14: List of Ghostscript PostScript interpreters"""


@pytest.mark.parametrize(
    ("lines", "previous", "role"),
    [
        (CONCEPT_INDEX, None, "index"),
        (FUNCTION_INDEX_GOES_ON, "index", "index"),
        (FUNCTION_INDEX_GOES_ON, "text", "contents"),  # dot leaders without an index before: contents-like
        (TABLE_PAGE, None, "text"),
        (TABLE_PAGE, "contents", "text"),
        ("", None, "blank"),
    ],
)
def test_index_and_contents_pages_are_told_from_text(lines: str, previous: str | None, role: str) -> None:
    assert layout.page_role(lines.splitlines(), previous) == role  # type: ignore[arg-type]


def test_pdf_protected_by_an_owner_password_only_opens() -> None:
    """Many PDFs are encrypted with an empty user password (printing or copying restricted): they read freely."""
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(["Owner-only protection still opens."])))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    assert parse(out.getvalue(), "restricted.pdf").pages[0].text == "Owner-only protection still opens."
