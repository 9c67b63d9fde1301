"""Document parsing on real manuals: each clean-up step measured, and the HTML reader chosen.

Needs the Debian Reference (`apt-get install debian-reference-en debian-reference-zh-cn`); not part of `make bench`.

    .venv/bin/python bench/parsing.py            # PDF: glued words, running heads, contents pages, hyphens, speed
    .venv/bin/python bench/parsing.py --html     # HTML: BeautifulSoup + markdownify against trafilatura
    .venv/bin/python bench/parsing.py --ocr 3    # OCR: pages/s and words right on 3 scanned pages

Glued words: tokens of the extracted text that are not words of the same manual's HTML edition but split into
two or more of them ("Thisdirectorycontains"), over all tokens of three letters or more.
"""

from __future__ import annotations

import argparse
import collections
import functools
import glob
import io
import re
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pypdfium2 as pdfium  # noqa: E402
from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning  # noqa: E402

from core import documents  # noqa: E402
from core.parsing import layout, ocr  # noqa: E402

warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)
ROOT = Path("/usr/share/debian-reference")
LANGS = {"en": "debian-reference.en.pdf", "zh-cn": "debian-reference.zh-cn.pdf"}
TOKEN = re.compile(r"[A-Za-z]{3,}")
HEAD = re.compile(r"Debian ?(Reference|参考手册) ?([ivxlc]+\b|\d+ ?/ ?\d+)")


def html_vocabulary(lang: str) -> set[str]:
    words: set[str] = set()
    for path in glob.glob(str(ROOT / f"*.{lang}.html")):
        text = BeautifulSoup(Path(path).read_text(encoding="utf-8"), "lxml").get_text(" ")
        words.update(w.lower() for w in re.findall(r"[A-Za-z]+", text))
    return words


def glued_share(texts: list[str], vocab: set[str]) -> tuple[int, int]:
    @functools.cache
    def splits(word: str) -> bool:  # two or more vocabulary words of 2+ letters, end to end
        return any(word[:i] in vocab and (word[i:] in vocab or splits(word[i:])) for i in range(2, len(word) - 1))

    tokens = [t.lower() for text in texts for t in TOKEN.findall(text)]
    glued = sum(1 for t in tokens if t not in vocab and len(t) >= 6 and splits(t))
    return glued, len(tokens)


def pdf_report() -> None:
    from pypdf import PdfReader

    print("| manual | extraction | s | glued words | pages with running head | contents pages | chunks |")
    print("|---|---|---|---|---|---|---|")
    for lang, name in LANGS.items():
        data = (ROOT / name).read_bytes()
        vocab = html_vocabulary(lang)
        started = time.perf_counter()
        reader = PdfReader(io.BytesIO(data))
        pypdf_texts = [p.extract_text() or "" for p in reader.pages]
        pypdf_s = time.perf_counter() - started
        started = time.perf_counter()
        pdf = pdfium.PdfDocument(data)
        raw = [pdf[i].get_textpage().get_text_range().replace("\r\n", "\n") for i in range(len(pdf))]
        raw_s = time.perf_counter() - started
        started = time.perf_counter()
        doc = documents.parse(data, name)
        parse_s = time.perf_counter() - started
        chunks = documents.split(doc, chunk_size=800, chunk_overlap=120)
        cleaned = [p.text for p in doc.pages]
        for label, texts, seconds, contents, n_chunks in (
            ("pypdf 7.1", pypdf_texts, pypdf_s, "-", "-"),
            ("PDFium, raw", raw, raw_s, "-", "-"),
            ("documents.parse", cleaned, parse_s, ranges(doc.pages_with("contents")), str(len(chunks))),
        ):
            glued, total = glued_share(texts, vocab) if lang == "en" else (0, 0)
            share = f"{glued:,} of {total:,} ({glued / total:.2%})" if total else "n/a (Chinese)"
            heads = sum(bool(HEAD.search(t)) for t in texts)
            print(f"| {lang} | {label} | {seconds:.2f} | {share} | {heads} of {len(texts)} | {contents} | {n_chunks} |")
        words = layout.vocabulary(raw)
        broken = [m.group(0) for t in raw for m in re.finditer(r"\w+\ufffe\w+", t)]
        kept = [b for b in broken if "-" in layout.join_hyphens(b, words)]
        shown = ", ".join(kept[:8]).replace(layout.SOFT_HYPHEN, "-")
        print(f"| {lang} | hyphens at line ends (PDFium's U+FFFE): {len(broken)}, joined {len(broken) - len(kept)}, "
              f"kept {len(kept)} ({shown}) | | | | OCR: pages {ranges(doc.ocr_pages)} | |")  # fmt: skip


def ranges(numbers: tuple[int, ...]) -> str:
    from core.parsing.base import ranges as short

    return short(numbers) or "none"


def html_report() -> None:
    import trafilatura

    from core.parsing.web import read_html

    def truth(html: str) -> str:
        soup = BeautifulSoup(html, "lxml")
        body = soup.select_one("div.chapter, div.preface, div.appendix, div.book") or soup.body
        for t in body.select("div.toc, script, style"):
            t.decompose()
        return str(body.get_text(" "))

    def traf(html: str) -> str:
        return str(trafilatura.extract(html, output_format="markdown", include_tables=True, include_links=False,
                                       include_images=False, favor_recall=True) or "")  # fmt: skip

    print("| pages | reader | words of the main text kept | precision | headings | s |")
    print("|---|---|---|---|---|---|")
    for lang in LANGS:
        totals: dict[tuple[str, str], float] = collections.defaultdict(float)
        for path in sorted(glob.glob(str(ROOT / f"*.{lang}.html"))):
            html = Path(path).read_text(encoding="utf-8")
            ref = collections.Counter(w.lower() for w in re.findall(r"\w+", truth(html)))
            for name, read in (("trafilatura 2.3.1", traf), ("bs4 + markdownify", lambda h: read_html(h, "x"))):
                started = time.perf_counter()
                out = read(html)
                totals[name, "s"] += time.perf_counter() - started
                got = collections.Counter(w.lower() for w in re.findall(r"\w+", out))
                totals[name, "hit"] += sum((ref & got).values())
                totals[name, "ref"] += sum(ref.values())
                totals[name, "got"] += sum(got.values())
                totals[name, "headings"] += len(re.findall(r"(?m)^#{1,6} ", out))
        for name in ("trafilatura 2.3.1", "bs4 + markdownify"):
            print(f"| Debian Reference {lang} | {name} | {totals[name, 'hit'] / totals[name, 'ref']:.1%} | "
                  f"{totals[name, 'hit'] / totals[name, 'got']:.1%} | {totals[name, 'headings']:.0f} | "
                  f"{totals[name, 's']:.1f} |")  # fmt: skip


def ocr_report(pages: int) -> None:
    source = pdfium.PdfDocument(ROOT / LANGS["en"])
    numbers = [132, 156, 162, 205, 176, 147, 146, 241, 103, 259][:pages]
    scan = pdfium.PdfDocument.new()
    truth: list[str] = []
    for n in numbers:  # each page rendered to a grey image at 108 dpi and put in a PDF with no text layer
        image = source[n - 1].render(scale=1.5, grayscale=True).to_pil()
        buffer = io.BytesIO()
        image.save(buffer, "PDF", resolution=108)
        scan.import_pages(pdfium.PdfDocument(buffer.getvalue()))
        truth.append(source[n - 1].get_textpage().get_text_range())
    out = io.BytesIO()
    scan.save(out)
    ocr._load()
    started = time.perf_counter()
    doc = documents.parse(out.getvalue(), "scan.pdf", ocr=documents.OcrLimits(max_pages=pages, max_seconds=3600))
    seconds = time.perf_counter() - started
    want = [w for t in truth for w in t.split()]
    got = collections.Counter(w for p in doc.pages for w in p.text.split())
    right = sum((collections.Counter(want) & got).values())
    print(f"OCR: {pages} scanned pages in {seconds:.1f} s ({pages / seconds:.2f} pages/s); "
          f"words right {right} of {len(want)} ({right / len(want):.1%}); pages {numbers}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--html", action="store_true")
    parser.add_argument("--ocr", type=int, default=0, metavar="PAGES")
    args = parser.parse_args()
    if args.html:
        html_report()
    elif args.ocr:
        ocr_report(args.ocr)
    else:
        pdf_report()
