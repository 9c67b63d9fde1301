"""Ingest benchmark: the app's path against raw SentenceTransformer.encode on the same chunks.

Run: make bench   (or .venv/bin/python bench/ingest.py --copies 5 --rounds 3)

Both sides use the same loaded model in the same process. The app side is end-to-end: parse,
chunk, embed, upsert into Qdrant local mode, write the manifest. The raw side encodes the
very same chunk texts. The ratio app/raw shows what the app adds on top of embedding (target
at most 1.25). Rounds alternate raw and app and the median of each is reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, summary  # noqa: E402
from core.config import Settings  # noqa: E402
from core.documents import parse, split  # noqa: E402
from core.embeddings import BATCH_SIZE, load_bundled  # noqa: E402
from core.ingest import Upload, ingest  # noqa: E402
from core.samples import load_questions, sample_uploads  # noqa: E402
from core.store import Store  # noqa: E402


def corpus(copies: int) -> list[Upload]:
    """The sample, `copies` times over, each copy with distinct bytes (so nothing is skipped)."""
    uploads = []
    for n in range(copies):
        for u in sample_uploads():
            # A trailing PDF comment after %%EOF, or a line of text, changes the content hash only.
            tail = f"\n% copy {n}\n" if u.filename.endswith(".pdf") else f"\n\n(copy {n})\n"
            stem, ext = u.filename.rsplit(".", 1)
            uploads.append(Upload(f"{stem}-{n}.{ext}", u.data + tail.encode()))
    return uploads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=5, help="how many copies of the sample to ingest")
    ap.add_argument("--rounds", type=int, default=3, help="alternating raw/app rounds; medians are reported")
    args = ap.parse_args()

    settings = Settings.from_env(data_dir=Path(tempfile.mkdtemp(prefix="ragtune-bench-")))
    started = time.perf_counter()
    model = load_bundled()
    load_s = time.perf_counter() - started
    st_model = model.embeddings.model  # type: ignore[attr-defined]

    uploads = corpus(args.copies)
    docs = [parse(u.data, u.filename) for u in uploads]
    chunks = [c for d in docs for c in split(d, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)]
    texts = [c.text for c in chunks]
    pages = sum(len(d.pages) for d in docs)
    print(f"corpus: {len(uploads)} files, {pages} pages, {len(chunks)} chunks ({args.copies} copies of the sample)")
    print(f"model load: {load_s:.2f} s (once, not counted below)")

    st_model.encode(texts[:64], batch_size=BATCH_SIZE, normalize_embeddings=True)  # warm-up
    store = Store.open(settings, model)
    raw_times: list[float] = []
    app_times: list[float] = []
    for r in range(args.rounds):
        t = time.perf_counter()
        st_model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True)
        raw_times.append(time.perf_counter() - t)

        kb = f"bench{r}"
        store.create_kb(kb, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
        t = time.perf_counter()
        reports = ingest(store, kb, uploads)
        app_times.append(time.perf_counter() - t)
        assert all(rep.status == "added" for rep in reports), reports
        assert store.count_chunks(kb) == len(chunks)

    t = time.perf_counter()
    again = ingest(store, f"bench{args.rounds - 1}", uploads)
    reingest_s = time.perf_counter() - t
    assert all(rep.status == "unchanged" for rep in again)

    # Retrieval quality on the sample question set: is the expected page among the top results?
    store.create_kb("quality", chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    ingest(store, "quality", sample_uploads())
    questions = load_questions()
    ranks = []
    for q in questions:
        found = [(h.filename, h.page) for h in store.search("quality", q.question, k=5)]
        ranks.append(found.index((q.source, q.page)) + 1 if (q.source, q.page) in found else None)
    store.close()

    raw, app = statistics.median(raw_times), statistics.median(app_times)
    print(f"raw SentenceTransformer.encode: {raw:6.2f} s  {len(chunks) / raw:6.1f} chunks/s")
    print(
        f"app ingest, end to end:         {app:6.2f} s  {len(chunks) / app:6.1f} chunks/s  {pages / app:6.1f} pages/s"
    )
    print(f"ratio app/raw: {app / raw:.3f}  (target <= 1.25; rounds raw {_fmt(raw_times)}, app {_fmt(app_times)})")
    print(f"re-ingest of {len(uploads)} unchanged files: {reingest_s * 1000:.1f} ms")
    hit1 = sum(r == 1 for r in ranks)
    hit5 = sum(r is not None for r in ranks)
    n = len(questions)
    print(f"retrieval on the {n} sample questions: hit@1 {hit1}/{n}, hit@5 {hit5}/{n}")
    summary(Figure("ingest.app_over_raw", app / raw, "<=", 1.25))


def _fmt(times: list[float]) -> str:
    return "[" + ", ".join(f"{t:.2f}" for t in times) + "]"


if __name__ == "__main__":
    main()
