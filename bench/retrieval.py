"""Retrieval benchmark: hit@k per sample set, model and mode; latency at 10,000 chunks; ingest cost of keywords.

Run: .venv/bin/python bench/retrieval.py   (make bench runs it too)

1. Quality: each sample knowledge base (English, Chinese) is ingested once per embedding model
   (MiniLM, multilingual E5) with its analyser, and every question is searched dense, sparse and
   hybrid through `Store.search`: hit@1, hit@3 and MRR@10 on the expected (file, page), dense-only
   beside the others. Targets: English hit@1 >= 90%, hit@3 >= 97%; Chinese hit@3 >= 90%.
2. Latency: p50 of `Store.search` (query embedding + search) at 10,000 chunks in local mode,
   dense and hybrid (target at most 20 ms and 30 ms), each question asked --repeats times, with
   the load average (the machine may be shared). Beside it: the query embedding alone against
   SentenceTransformer.encode as its docs call it, and the search alone against Qdrant's raw
   query_points, each as a ratio app/raw from the same run.
   Chunk texts are the sample's chunks over and over (so keyword postings are realistic); dense
   vectors are random unit vectors (search cost does not depend on what they mean).
3. Ingest: the English sample (several copies) ingested end to end into a dense-only knowledge
   base and into one with the keyword index, alternating; the ratio of medians (target <= 1.15).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from langchain_core.embeddings import Embeddings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import Settings  # noqa: E402
from core.documents import Chunk, parse, split  # noqa: E402
from core.embeddings import (  # noqa: E402
    BUNDLED_MODEL,
    MULTILINGUAL_MODEL,
    EmbeddingCatalog,
    EmbeddingModel,
    load_bundled,
)
from core.ingest import Upload, ingest  # noqa: E402
from core.kb_transfer import copy_kb  # noqa: E402
from core.samples import CHINESE, ENGLISH, Sample  # noqa: E402
from core.store import RETRIEVAL_MODES, DocumentRecord, Store  # noqa: E402

K = 10


def quality(store: Store, sample: Sample, model: str, analyser: str, chunk_size: int, overlap: int) -> dict[str, str]:
    kb = f"q-{sample.kb_name}-{model}-{analyser}-{chunk_size}".replace(".", "")[:48]
    store.create_kb(kb, chunk_size=chunk_size, chunk_overlap=overlap, embedding_model=model, analyser=analyser)
    started = time.perf_counter()
    reports = ingest(store, kb, sample.uploads())
    assert all(r.status == "added" for r in reports), reports
    chunks = sum(r.chunks for r in reports)
    ingest_s = time.perf_counter() - started
    questions = sample.questions()
    rows = {}
    for mode in RETRIEVAL_MODES:
        ranks = []
        for q in questions:
            found = [(h.filename, h.page) for h in store.search(kb, q.question, k=K, mode=mode)]
            ranks.append(found.index((q.source, q.page)) + 1 if (q.source, q.page) in found else None)
        n = len(ranks)
        hit1 = sum(r == 1 for r in ranks) / n
        hit3 = sum(r is not None and r <= 3 for r in ranks) / n
        mrr = sum(1 / r for r in ranks if r) / n
        rows[mode] = f"hit@1 {hit1:6.1%}  hit@3 {hit3:6.1%}  MRR {mrr:.3f}"
    print(f"  {sample.language:7} {model:22} {analyser:8} chunks {chunks:3} (ingest {ingest_s:5.1f} s)")
    for mode, row in rows.items():
        print(f"      {mode:7} {row}")
    return rows


class Precomputed(Embeddings):
    """Query vectors computed beforehand: `Store.search` timed without the embedding model."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]


def latency(root: Path, catalog: EmbeddingCatalog, model: str, n_chunks: int, queries: int, repeats: int) -> None:
    import numpy as np

    embedder = catalog.get(model)
    store = Store.open(Settings.from_env(data_dir=root / model), embedder)
    store.create_kb("big", chunk_size=800, chunk_overlap=120, analyser="english")
    settings = Settings.from_env()
    texts = [
        c.text
        for u in ENGLISH.uploads()
        for c in split(parse(u.data, u.filename), chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    ]
    doc_id = "0" * 32
    chunks = [Chunk(doc_id, "big.txt", 1 + i // 20, i, f"{texts[i % len(texts)]} ({i})", 0, 8) for i in range(n_chunks)]
    vectors = np.random.default_rng(7).standard_normal((n_chunks, embedder.dimension))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.upsert_chunks("big", chunks, vectors.tolist())
    store.commit(DocumentRecord("big", doc_id, "big.txt", "text", 500, n_chunks, 0, "now"))
    assert store.count_chunks("big") == n_chunks
    distinct = [q.question for q in ENGLISH.questions()][:queries]
    questions = distinct * repeats  # each question asked `repeats` times, nothing cached between them
    store.search("big", "warm up", k=4, mode="hybrid")
    modes = ("dense", "hybrid", "sparse")
    times: dict[str, list[float]] = {"embed": [], **{m: [] for m in modes}}
    # CPU seconds of the whole process per call: on a shared machine, what an idle core would take.
    cpu: dict[str, list[float]] = {"embed": [], **{m: [] for m in modes}}
    loads = [os.getloadavg()[0]]
    for q in questions:
        t, c = time.perf_counter(), time.process_time()
        embedder.embeddings.embed_query(q)
        times["embed"].append(time.perf_counter() - t)
        cpu["embed"].append(time.process_time() - c)
        for mode in modes:
            t, c = time.perf_counter(), time.process_time()
            store.search("big", q, k=4, mode=mode)
            times[mode].append(time.perf_counter() - t)
            cpu[mode].append(time.process_time() - c)
    loads.append(os.getloadavg()[0])
    # The raw library beside the app: SentenceTransformer.encode as its docs call it (on torch's default
    # threads), and Qdrant's query_points with the vector ready (same process, so the same BLAS threads).
    raw_embed: list[float] = []
    model_object = getattr(embedder.embeddings, "model", None)
    if model_object is not None:
        model_object.encode(distinct[0])
        for q in distinct:
            t = time.perf_counter()
            model_object.encode(q, normalize_embeddings=True)
            raw_embed.append(time.perf_counter() - t)
    # The same searches with the query vectors ready: what Qdrant and the keyword index cost alone.
    ready = Precomputed({q: embedder.embeddings.embed_query(q) for q in distinct})
    store.embedder = replace(embedder, embeddings=ready)
    search_only: dict[str, list[float]] = {m: [] for m in (*modes, "raw dense")}
    for q in questions:
        for mode in modes:
            t = time.perf_counter()
            store.search("big", q, k=4, mode=mode)
            search_only[mode].append(time.perf_counter() - t)
        vector = ready.vectors[q]
        t = time.perf_counter()
        store.client.query_points("big", query=vector, using="dense", limit=4)
        search_only["raw dense"].append(time.perf_counter() - t)
    loads.append(os.getloadavg()[0])
    store.close()
    p50 = {k: statistics.median(v) * 1000 for k, v in times.items()}
    cpu50 = {k: statistics.median(v) * 1000 for k, v in cpu.items()}
    alone = {k: statistics.median(v) * 1000 for k, v in search_only.items()}
    print(
        f"  {model:22} p50 of {len(questions)}: dense {p50['dense']:5.1f} ms (target 20)  "
        f"hybrid {p50['hybrid']:5.1f} ms (target 30)  sparse {p50['sparse']:4.1f} ms  "
        f"[load average {min(loads):.1f}-{max(loads):.1f}]"
    )
    print(
        f"      CPU time p50 (the process, all threads): dense {cpu50['dense']:5.1f} ms  hybrid "
        f"{cpu50['hybrid']:5.1f} ms  query embedding {cpu50['embed']:5.1f} ms"
    )
    line = f"      query embedding alone {p50['embed']:5.1f} ms"
    if raw_embed:
        raw = statistics.median(raw_embed) * 1000
        line += f" (SentenceTransformer.encode {raw:.1f} ms, ratio app/raw {p50['embed'] / raw:.2f})"
    print(line)
    print(
        f"      search alone: dense {alone['dense']:4.1f} ms (raw query_points {alone['raw dense']:4.1f} ms, "
        f"ratio {alone['dense'] / alone['raw dense']:.2f}), hybrid {alone['hybrid']:4.1f} ms, "
        f"sparse {alone['sparse']:4.1f} ms"
    )


def ingest_cost(root: Path, catalog: EmbeddingCatalog, copies: int, rounds: int) -> None:
    embedder = catalog.get(BUNDLED_MODEL)
    store = Store.open(Settings.from_env(data_dir=root / "ingest"), embedder)
    uploads = [
        Upload(f"{n}-{u.filename}", u.data + (f"\n% {n}\n" if u.filename.endswith(".pdf") else f"\n\n({n})\n").encode())
        for n in range(copies)
        for u in ENGLISH.uploads()
    ]
    times: dict[str, list[float]] = {"dense only": [], "with keywords": []}
    for r in range(rounds):
        for label, analyser in (("dense only", None), ("with keywords", "english")):
            kb = f"ingest-{r}-{'sparse' if analyser else 'dense'}"
            store.create_kb(kb, chunk_size=800, chunk_overlap=120, analyser=analyser)
            t = time.perf_counter()
            reports = ingest(store, kb, uploads)
            times[label].append(time.perf_counter() - t)
            assert all(rep.status == "added" for rep in reports)
            store.delete_kb(kb)
    store.close()
    dense, hybrid = (statistics.median(times[k]) for k in ("dense only", "with keywords"))
    print(
        f"  {len(uploads)} files: dense only {dense:.2f} s, with keyword index {hybrid:.2f} s, "
        f"ratio {hybrid / dense:.3f} (target <= 1.15)"
    )


def train_retriever(root: Path, minilm: EmbeddingModel, epochs: int) -> None:
    from core import embedding_tuner as tuner

    settings = Settings.from_env(data_dir=root / "train")
    catalog = EmbeddingCatalog(data_dir=settings.data_dir, preloaded=[minilm])
    store = Store.open(settings, minilm, catalog)
    store.create_kb("base", chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    ingest(store, "base", ENGLISH.uploads())
    pairs = tuner.pseudo_labels(store, "base")
    started = time.perf_counter()
    name = tuner.train(settings.data_dir, "bench", pairs, epochs=epochs)
    train_s = time.perf_counter() - started
    copy_kb(store, "base", "tuned", embedding_model=name)
    print(
        f"  {len(pairs)} pseudo-labelled pairs from the English sample, {epochs} epoch(s), {train_s:.0f} s on the CPU"
    )
    for mode in ("dense", "hybrid"):
        for kb in ("base", "tuned"):
            scores = tuner.evaluate(
                lambda q, kb=kb, mode=mode: store.search(kb, q, k=10, mode=mode), ENGLISH.questions()
            )
            hits = "  ".join(f"hit@{k} {v:6.1%}" for k, v in scores.hits.items())
            print(f"      {mode:7} {store.get_kb(kb).embedding_model:22} {hits}  MRR {scores.mrr:.3f}")
    store.close()


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line.split()[1] for line in status if line.startswith("VmRSS"))) / 1024


def scale(root: Path, minilm: EmbeddingModel, sizes: list[int], queries: int) -> None:
    """Local mode's retrieval p50 and the process's memory as a knowledge base grows (MiniLM, English)."""
    import numpy as np

    settings = Settings.from_env()
    texts = [
        c.text
        for u in ENGLISH.uploads()
        for c in split(parse(u.data, u.filename), chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    ]
    questions = [q.question for q in ENGLISH.questions()][:queries]
    for n_chunks in sizes:
        before = rss_mb()
        store = Store.open(Settings.from_env(data_dir=root / f"scale-{n_chunks}"), minilm)
        store.create_kb("big", chunk_size=800, chunk_overlap=120, analyser="english")
        doc_id = "0" * 32
        rng = np.random.default_rng(7)
        started = time.perf_counter()
        for start in range(0, n_chunks, 5000):  # random vectors: search cost does not depend on what they say
            count = min(5000, n_chunks - start)
            chunks = [
                Chunk(doc_id, "big.txt", 1 + i // 20, i, f"{texts[i % len(texts)]} ({i})", 0, 8)
                for i in range(start, start + count)
            ]
            vectors = rng.standard_normal((count, minilm.dimension))
            store.upsert_chunks("big", chunks, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).tolist())
        store.commit(DocumentRecord("big", doc_id, "big.txt", "text", 500, n_chunks, 0, "now"))
        stored_s = time.perf_counter() - started
        store.search("big", "warm up", k=4, mode="hybrid")  # builds the in-process keyword index
        loaded = rss_mb()
        times: dict[str, list[float]] = {"dense": [], "hybrid": []}
        for q in questions:
            for mode in times:
                t = time.perf_counter()
                store.search("big", q, k=4, mode=mode)
                times[mode].append(time.perf_counter() - t)
        store.close()
        p50 = {m: statistics.median(v) * 1000 for m, v in times.items()}
        print(
            f"  {n_chunks:>7,} chunks: p50 dense {p50['dense']:6.1f} ms, hybrid {p50['hybrid']:6.1f} ms; "
            f"process memory {loaded:,.0f} MB (+{loaded - before:,.0f} MB since the last size); "
            f"stored in {stored_s:.0f} s "
            f"[load average {os.getloadavg()[0]:.1f}]"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5, help="latency: times each query is asked")
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1, help="retriever training epochs")
    ap.add_argument("--skip", nargs="*", default=[], choices=["quality", "latency", "ingest", "train"])
    ap.add_argument(
        "--scale", nargs="*", type=int, help="only local mode's p50 and memory at these sizes (default 10k 50k 100k)"
    )
    args = ap.parse_args()
    if args.scale is not None:
        sizes = args.scale or [10_000, 50_000, 100_000]
        print(f"Qdrant local mode as a knowledge base grows (MiniLM, English analyser, k=4, {args.queries} queries):")
        scale(Path(tempfile.mkdtemp(prefix="ragtune-bench-")), load_bundled(), sizes, args.queries)
        return

    root = Path(tempfile.mkdtemp(prefix="ragtune-bench-"))
    minilm = load_bundled()
    catalog = EmbeddingCatalog(preloaded=[minilm])
    settings = Settings.from_env(data_dir=root)
    if "quality" not in args.skip:
        print(f"Quality through Store.search, k={K} (dense = dense only, the baseline):")
        store = Store.open(settings, minilm, catalog)
        for sample, analyser in ((ENGLISH, "english"), (CHINESE, "chinese")):
            for model in (BUNDLED_MODEL, MULTILINGUAL_MODEL):
                quality(store, sample, model, analyser, settings.chunk_size, settings.chunk_overlap)
        store.close()
    if "latency" not in args.skip:
        print(f"Retrieval p50 at {args.chunks} chunks, Qdrant local mode, k=4:")
        for model in (BUNDLED_MODEL, MULTILINGUAL_MODEL):
            latency(root, catalog, model, args.chunks, args.queries, args.repeats)
    if "ingest" not in args.skip:
        print("Ingest, English sample with MiniLM, median of alternating rounds:")
        ingest_cost(root, catalog, args.copies, args.rounds)
    if "train" not in args.skip:
        print("Retriever training (MiniLM, MultipleNegativesRankingLoss), English sample questions before/after:")
        train_retriever(root, minilm, args.epochs)


if __name__ == "__main__":
    main()
