"""Real documents: the Debian Reference (English and Chinese PDFs) through the app's defaults, against raw extraction.

For each language, a knowledge base is made as a new user makes one (no model chosen: it takes the model
and analyser that fit its first document, `core.language`; the default chunking) and the PDF is ingested
through `core.ingest`. Printed per language, for the app's path and, for the record, for pypdf's text
(`PdfReader.extract_text` per page, stored the same way):
  - glued words: Latin words of the stored chunks that are not words of the manual but split into two or
    more of them ("Thisdirectorycontains"); the manual's own words come from the plain-text edition Debian
    ships beside the PDF (`debian-reference.<lang>.txt.gz`);
  - chunks, and the contents/index pages the parser found (pages it marks with such a role; "–" when the
    parser marks none);
  - pages/s, and the ratio against raw PDFium extraction (`get_text_range` of every page) plus embedding the
    same chunk texts with the same model (target >= 0.8);
  - retrieval hit@1 / hit@3 of the expected page through `Store.search` (target hit@3 >= 90%);
  - RAG correctness: the app's RAG preset through the Evaluate runner, as `bench/quality.py` asks it.
Then OCR: ten pages rendered to images and put back into an image-only PDF, read by `documents.parse`
(pages/s, and the word accuracy of one page against its PDFium text); skipped with a line while `core`
has no OCR path (such a PDF is refused). Then language detection (`core.language.detect`) page by page on
every edition of the Debian Reference installed (`apt-get install debian-reference-fr` etc. for more).

The questions (`samples/real/`) were written from the manual's pages before any model saw them. The PDFs
come from Debian's packages: found where `dpkg -L` says, installed with apt-get when missing and allowed
(`--install`). Never the Debian FAQ: the product is checked on it.

Measured 2 Dec 2026 on main's parser (pypdf; before PDFium), 2 cores at load 11-13 shared with other work
(pages/s and the ratio are unreliable at that load; English and Chinese ran as two processes at once):
  en     glued 8,619/47,964 words (17.97%; raw PDFium 0.03%), 975 chunks, 0.4 pages/s, 0.73x raw,
         hit@1 73%, hit@3 83%, RAG 33%; pypdf's own text the same (it is what main parses with)
  zh-cn  glued 482/24,468 (1.97%; raw PDFium 0.02%), 1,044 chunks, 0.1 pages/s (multilingual E5), 0.46x raw,
         hit@1 87%, hit@3 100%, RAG 23% (SmolLM2 does not read Chinese)
  OCR: skipped in both (main refuses scanned PDFs); contents pages: "–" (main's parser marks none)
  language detection: de 274/275, en 258/260, fr 248/264, ja 248/271, zh-cn 250/250 pages; every edition right

Run: .venv/bin/python bench/real_docs.py [--tiny] [--languages en,zh-cn] [--limit N] [--skip rag,pypdf,ocr,language]
     [--install] [--data-dir DIR]
  --tiny: 3 questions a language on a 4-page cut (a contents page and theirs), RAG on the app's text only, OCR of one
  page (tests/test_real_docs_bench.py runs it).
"""

from __future__ import annotations

import argparse
import difflib
import gzip
import io
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Offline, offline  # noqa: E402
from core import documents  # noqa: E402
from core import language as lang  # noqa: E402
from core.embeddings import MULTILINGUAL_MODEL  # noqa: E402
from core.errors import DocumentError  # noqa: E402
from core.evaluation import questions as qs  # noqa: E402
from core.evaluation.metrics import source_rank  # noqa: E402
from core.evaluation.report import load_run, summarize  # noqa: E402
from core.evaluation.runner import EvalRequest, run_evaluation, start_run  # noqa: E402
from core.ingest import Upload, add_parsed, ingest  # noqa: E402
from core.strategies import presets  # noqa: E402

REAL = ROOT / "samples" / "real"
PACKAGE = "debian-reference-{lang}"
PDF = "debian-reference.{lang}.pdf"
TEXT = "debian-reference.{lang}.txt.gz"
TINY_QUESTIONS = 3
TINY_CONTENTS = (5,)  # the first page of the table of contents, in both editions
_LATIN = re.compile(r"[A-Za-z]+")


@dataclass
class Row:
    label: str
    glued: int
    words: int
    chunks: int
    contents_pages: int | None
    pages: int
    seconds: float
    raw_seconds: float | None
    hit1: float
    hit3: float
    rag: float | None


def find_file(lang_code: str, name: str, *, install: bool) -> Path | None:
    """A file of the Debian Reference package for `lang_code`: where dpkg put it, installed first if allowed."""
    package = PACKAGE.format(lang=lang_code)

    def listed() -> Path | None:
        try:
            out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False).stdout
        except FileNotFoundError:
            return None
        return next((Path(p) for p in out.splitlines() if p.endswith("/" + name) and Path(p).is_file()), None)

    found = listed()
    if found is None and install and shutil.which("apt-get"):
        print(f"installing {package} (apt-get)…", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", package], capture_output=True, check=False)
        found = listed()
    return found


def tiny_pdf(data: bytes, questions: list[qs.EvalQuestion]) -> tuple[bytes, list[qs.EvalQuestion]]:
    """A contents page and the pages the questions ask about, as one PDF; the questions renumbered to match."""
    import pypdfium2 as pdfium

    keep = sorted({*TINY_CONTENTS, *(q.page for q in questions if q.page)})
    src = pdfium.PdfDocument(data)
    out = pdfium.PdfDocument.new()
    out.import_pages(src, [p - 1 for p in keep])
    buffer = io.BytesIO()
    out.save(buffer)
    renumbered = [replace(q, page=keep.index(q.page) + 1) if q.page else q for q in questions]
    return buffer.getvalue(), renumbered


def pdfium_texts(data: bytes) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    return [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]


def pypdf_texts(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]


@cache
def vocabulary(text_file: Path) -> frozenset[str]:
    with gzip.open(text_file, "rt", encoding="utf-8", errors="replace") as f:
        return frozenset(w.lower() for w in _LATIN.findall(f.read()))


def glued(texts: list[str], vocab: frozenset[str]) -> tuple[int, int]:
    """(glued words, Latin words) in the texts: a glued word is not the manual's but splits into 2+ of its words."""

    @cache
    def splits(word: str) -> bool:
        ends = {0: 0}  # position -> fewest words to reach it
        for i in range(len(word)):
            if i not in ends:
                continue
            for j in range(i + 2, len(word) + 1):
                if word[i:j] in vocab and (j not in ends or ends[j] > ends[i] + 1):
                    ends[j] = ends[i] + 1
        return ends.get(len(word), 0) >= 2

    counts = Counter(w.lower() for t in texts for w in _LATIN.findall(t))
    bad = sum(n for w, n in counts.items() if len(w) >= 6 and w not in vocab and splits(w))
    return bad, sum(counts.values())


def load_set(lang_code: str, limit: int | None) -> list[qs.EvalQuestion]:
    path = REAL / f"questions.{lang_code}.jsonl"
    parsed = qs.parse_upload(path.name, path.read_bytes())
    assert not parsed.issues, parsed.issues
    return parsed.questions[:limit]


SETS = {"real-en": "en", "real-zh-cn": "zh-cn"}  # as bench/modes.py and bench/quality.py name these sets


def knowledge_base(stack: Offline, kb: str) -> tuple[str, tuple[qs.EvalQuestion, ...]]:
    """A real-document set for the other benches: its knowledge base, made as a new user makes one (no model
    chosen, the default chunking) unless DATA_DIR has it, and its questions.

    Raises:
        SystemExit: the Debian Reference is not installed.
    """
    code = SETS[kb]
    store, settings = stack.store, stack.settings
    if kb not in [k.name for k in store.list_kbs()]:
        pdf = find_file(code, PDF.format(lang=code), install=False)
        if pdf is None:
            raise SystemExit(f"{kb}: run `apt-get install -y {PACKAGE.format(lang=code)}` first")
        store.create_kb(kb, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
        print(f"{kb}: ingesting {pdf.name}…", flush=True)
        ingest(store, kb, [Upload(pdf.name, pdf.read_bytes())])
    return kb, tuple(load_set(code, None))


def retrieval(stack: Offline, kb: str, questions: list[qs.EvalQuestion]) -> tuple[float, float]:
    ranks = []
    for q in questions:
        hits = stack.store.search(kb, q.question, k=3)
        ranks.append(source_rank([(h.filename, h.page) for h in hits], q.source, q.page))
    n = max(len(ranks), 1)
    return sum(r == 1 for r in ranks) / n, sum(r is not None and r <= 3 for r in ranks) / n


def rag(stack: Offline, kb: str, questions: list[qs.EvalQuestion], name: str) -> float | None:
    """The RAG preset's correctness through the Evaluate runner, as Compare and Evaluate build it."""
    preset = presets(stack.catalog.available(), kb)["RAG"]
    if preset.disabled_reason:
        print(f"  RAG skipped: {preset.disabled_reason}")
        return None
    run_id = start_run(
        stack.runtime, EvalRequest(f"real docs {name}", f"real-{name}", tuple(questions), (preset.strategy,))
    )
    run_evaluation(stack.runtime, run_id, embedder=stack.embedder.embeddings)
    [summary] = summarize(load_run(stack.runtime.records, run_id))
    return summary.correct


def chunk_texts(stack: Offline, kb: str) -> list[str]:
    return [h.text for d in stack.store.list_documents(kb) for h in stack.store.chunks_of(kb, d.doc_id)]


def app_row(
    stack: Offline, code: str, data: bytes, name: str, questions: list, vocab: frozenset[str], skip: set[str]
) -> Row:
    """The app's path: a new user's knowledge base (no model chosen), `ingest` of the PDF."""
    settings, store = stack.settings, stack.store
    kb = f"real-{code}"
    store.create_kb(kb, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    started = time.perf_counter()
    [report] = ingest(store, kb, [Upload(name, data)])
    seconds = time.perf_counter() - started
    assert report.status == "added", report
    info = store.get_kb(kb)
    print(
        f"  {name}: {report.pages} pages, language {report.language} -> {info.embedding_model}, {info.analyser} words"
    )
    texts = chunk_texts(stack, kb)
    doc = documents.parse(data, name)
    roles = [getattr(p, "role", None) for p in doc.pages]
    contents = sum(r in ("contents", "index") for r in roles) if any(r is not None for r in roles) else None
    raw_started = time.perf_counter()
    pdfium_texts(data)
    store.embedder_for(info).embeddings.embed_documents(texts)
    raw = time.perf_counter() - raw_started
    bad, words = glued(texts, vocab)
    hit1, hit3 = retrieval(stack, kb, questions)
    correct = rag(stack, kb, questions, kb) if "rag" not in skip else None
    return Row("app", bad, words, len(texts), contents, report.pages, seconds, raw, hit1, hit3, correct)


def pypdf_row(
    stack: Offline, code: str, data: bytes, name: str, questions: list, vocab: frozenset[str], skip: set[str]
) -> Row:
    """For the record: pypdf's text of each page, stored as the app stores a parsed document (same model, chunking)."""
    settings, store = stack.settings, stack.store
    kb = f"real-{code}-pypdf"
    started = time.perf_counter()
    pages = pypdf_texts(data)
    doc = documents.ParsedDocument(
        doc_id=documents.document_id(data),
        filename=name,
        kind="pdf",
        pages=tuple(documents.Page(number=i + 1, text=t) for i, t in enumerate(pages) if t.strip()),
        size_bytes=len(data),
    )
    store.create_kb(
        kb,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        language=lang.detect_pages(pages),
    )
    [report] = add_parsed(store, kb, [doc])
    seconds = time.perf_counter() - started
    texts = chunk_texts(stack, kb)
    bad, words = glued(texts, vocab)
    hit1, hit3 = retrieval(stack, kb, questions)
    correct = rag(stack, kb, questions, kb) if "rag" not in skip else None
    return Row("pypdf", bad, words, report.chunks, None, len(pages), seconds, None, hit1, hit3, correct)


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


def print_rows(code: str, n_questions: int, rows: list[Row]) -> None:
    print(f"\n{code}: {n_questions} questions")
    print(f"{'text':<6} {'glued words':>18} {'chunks':>6} {'TOC pages':>9} {'pages/s':>8} {'vs raw':>7} "
          f"{'hit@1':>6} {'hit@3':>6} {'RAG':>5}")  # fmt: skip
    for r in rows:
        share = f"{r.glued}/{r.words} {r.glued / max(r.words, 1):.2%}"
        ratio = f"{r.raw_seconds / r.seconds:.2f}x" if r.raw_seconds else "–"
        toc = "–" if r.contents_pages is None else str(r.contents_pages)
        print(f"{r.label:<6} {share:>18} {r.chunks:>6} {toc:>9} {r.pages / r.seconds:>8.1f} {ratio:>7} "
              f"{pct(r.hit1):>6} {pct(r.hit3):>6} {pct(r.rag):>5}")  # fmt: skip


def scanned_pdf(data: bytes, pages: list[int], scale: float = 2.0) -> bytes:
    """Pages rendered to images (144 dpi at scale 2) and put back into a PDF with no text layer, as a scanner makes."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    images = [pdf[p - 1].render(scale=scale).to_pil().convert("RGB") for p in pages]
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:], resolution=72 * scale)
    return buffer.getvalue()


def ocr(code: str, data: bytes, first_page: int, count: int) -> None:
    pages = list(range(first_page, first_page + count))
    scanned = scanned_pdf(data, pages)
    started = time.perf_counter()
    try:
        doc = documents.parse(scanned, f"scanned-{code}.pdf")
    except DocumentError as e:
        print(f"OCR {code}: skipped: core has no OCR path yet (a {count}-page scanned PDF is refused: {e})")
        return
    seconds = time.perf_counter() - started
    reference = pdfium_texts(data)[first_page - 1]
    got = doc.pages[0].text if doc.pages else ""
    tokens = (
        (lambda t: list(t.replace(" ", "").replace("\n", ""))) if lang.detect(reference) in ("zh", "ja") else str.split
    )
    accuracy = difflib.SequenceMatcher(None, tokens(reference), tokens(got), autojunk=False).ratio()
    read = sum(bool(getattr(p, "ocr", True)) for p in doc.pages)
    unit = "words" if tokens is str.split else "characters"
    print(f"OCR {code}: {count} scanned pages ({read} read by OCR) in {seconds:.1f} s, {count / seconds:.2f} pages/s; "
          f"page {first_page} against its PDFium text: {accuracy:.1%} of {unit} in order (difflib ratio)")  # fmt: skip


def languages_table() -> None:
    """`core.language.detect` page by page on every installed edition of the Debian Reference."""
    expected = {"en": {"en"}, "zh-cn": {"zh", "mixed"}, "zh-tw": {"zh", "mixed"}, "ja": {"ja"}}
    folder = Path("/usr/share/debian-reference")
    print("\nlanguage detection, page by page (pages with text):")
    for pdf in sorted(folder.glob("debian-reference.*.pdf")):
        code = pdf.name.split(".")[1]
        texts = [t for t in pdfium_texts(pdf.read_bytes()) if t.strip()]
        started = time.perf_counter()
        found = [lang.detect(t) for t in texts]
        per_page = (time.perf_counter() - started) / len(texts)
        started = time.perf_counter()
        whole = lang.detect_pages(texts)
        whole_ms = (time.perf_counter() - started) * 1000
        right = sum(f in expected.get(code, {"other"}) for f in found)
        common = ", ".join(f"{k} {n}" for k, n in Counter(found).most_common())
        print(f"  {code:<6} {right}/{len(texts)} right ({common}); whole document: {whole} in {whole_ms:.1f} ms "
              f"({per_page * 1000:.2f} ms a page)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="3 questions, their pages and a contents page")
    parser.add_argument("--languages", default="en,zh-cn")
    parser.add_argument("--limit", type=int, default=None, help="ask only the first N questions of each set")
    parser.add_argument("--skip", nargs="*", default=[], choices=["rag", "pypdf", "ocr", "language"])
    parser.add_argument("--install", action="store_true", help="apt-get install the Debian Reference when missing")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    skip = set(args.skip)
    limit = TINY_QUESTIONS if args.tiny and args.limit is None else args.limit
    tmp = tempfile.TemporaryDirectory()
    stack = offline(args.data_dir or Path(tmp.name))
    stack.store.catalog.get(MULTILINGUAL_MODEL)  # both models warm: the figures time ingest, not model loading
    found_any = False
    for code in args.languages.split(","):
        pdf = find_file(code, PDF.format(lang=code), install=args.install)
        text = find_file(code, TEXT.format(lang=code), install=False)
        if pdf is None or text is None:
            package = PACKAGE.format(lang=code)
            print(
                f"{code}: the Debian Reference is not installed; run `apt-get install -y {package}` or pass --install"
            )
            continue
        found_any = True
        data, questions = pdf.read_bytes(), load_set(code, limit)
        if args.tiny:
            data, questions = tiny_pdf(data, questions)
        vocab = vocabulary(text)
        rows = [app_row(stack, code, data, pdf.name, questions, vocab, skip)]
        if "pypdf" not in skip:
            pypdf_skip = skip | {"rag"} if args.tiny else skip  # tiny: pypdf's retrieval only
            rows.append(pypdf_row(stack, code, data, pdf.name, questions, vocab, pypdf_skip))
        print_rows(code, len(questions), rows)
        raw_glued, raw_words = glued(pdfium_texts(data), vocab)
        print(f"  raw PDFium text, for reference: {raw_glued}/{raw_words} glued ({raw_glued / max(raw_words, 1):.2%})")
        if "ocr" not in skip:
            ocr(code, data, 3 if args.tiny else 31, 1 if args.tiny else 10)
    if "language" not in skip and not args.tiny:
        languages_table()
    stack.store.close()
    print(json.dumps({"done": found_any}))
    if not found_any:
        sys.exit(2)


if __name__ == "__main__":
    main()
