"""Parameter-sweep benchmark: the Evaluate page's default grid on a sample knowledge base, as one run.

Prints how long each scratch knowledge base took to build (chunks, seconds, seconds a chunk: the
page's estimate uses `sweep.EMBED_S_PER_CHUNK`), then correctness and p50 latency per cell, the
best cell, and the seconds an answer took (the page's first guess is `sweep.ANSWER_S`).

Measured (brackenridge, all 40 questions, RAG preset template, no threshold, shared 2 cores at load 4-6):
360 answers in 710 s; correct 50-62.5% per cell, best 1200/180 top-2 (62.5%, p50 1.28 s), then 800/120
top-2 (57.5%, today's default chunking and top-k); top-1 is fastest (p50 0.91-1.24 s) and never best.

With today's RAG template (excerpts run together), top-2, every question of each set, quiet box, 25 Nov:
  chunking       brackenridge (40)   corvane (24, held out)   vellacourt (20, held-out PDF)
  500/75         62.5%               83.3%                    35.0%
  800/120        70.0%               83.3%                    55.0%   <- the default, best on all three
  1200/180       67.5%               75.0%                    45.0%
  1600/240       65.0%               75.0%                    40.0%

Run: .venv/bin/python bench/sweep.py [--kb brackenridge|corvane|vellacourt|qingwu] [--questions 10] [--top-k 1 2 3]
     [--chunkings 400/60 800/120 1200/180] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import offline  # noqa: E402
from core.evaluation import questions as qs  # noqa: E402
from core.evaluation import sweep  # noqa: E402
from core.evaluation.report import load_run  # noqa: E402
from core.evaluation.runner import run_evaluation, start_run  # noqa: E402
from core.evaluation.sweep import Chunking, Grid  # noqa: E402
from core.ingest import ingest  # noqa: E402
from core.samples import SAMPLES  # noqa: E402
from core.strategies import RAG_TEMPLATE, presets  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb", default="brackenridge", choices=sorted(SAMPLES))
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--top-k", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--chunkings", nargs="+", default=["400/60", "800/120", "1200/180"])
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    data_dir = args.data_dir or Path(tmp.name)
    stack = offline(data_dir)  # as the app opens it: a knowledge base on another embedding model loads it
    settings, store, catalog, runtime = stack.settings, stack.store, stack.catalog, stack.runtime
    sample = SAMPLES[args.kb]
    if args.kb not in [k.name for k in store.list_kbs()]:
        store.create_kb(args.kb, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap,
                        embedding_model=sample.embedding_model, analyser=sample.analyser)  # fmt: skip
        ingest(store, args.kb, sample.uploads())
    chunkings = tuple(Chunking(*map(int, c.split("/"))) for c in args.chunkings)
    grid = Grid(args.kb, chunkings, tuple(args.top_k), (None,), (RAG_TEMPLATE,))
    for c in chunkings:
        one = Grid(args.kb, (c,), grid.top_ks, grid.thresholds, grid.templates)
        chunks = sweep.chunks_to_embed(store, one)
        started = time.perf_counter()
        sweep.prepare(store, one)
        seconds = time.perf_counter() - started
        built = sum(r.chunks for r in store.list_documents(sweep.scratch_name(args.kb, c)))
        print(f"scratch {c.label}: {built} chunks (estimated {chunks}) in {seconds:.1f} s, "
              f"{seconds / max(built, 1):.3f} s a chunk")  # fmt: skip

    base = presets(catalog.available(), args.kb)["RAG"].strategy
    questions = qs.sample_set(args.kb).questions[: args.questions]
    request = sweep.request(grid, base, "bench sweep", args.kb, questions)
    run_id = start_run(runtime, request)
    started = time.perf_counter()
    run_evaluation(runtime, run_id, embedder=store.embedder.embeddings)
    seconds = time.perf_counter() - started
    cells = sweep.results(load_run(runtime.records, run_id))
    n = sweep.answers(grid, len(questions))
    print(f"{n} answers in {seconds:.0f} s ({seconds / n:.2f} s an answer, scoring included)")
    for c in cells:
        print(f"  {c.strategy:55s} correct {c.correct or 0:6.1%}  p50 {c.p50_s or 0:5.2f} s")
    best = sweep.best(cells)
    if best is not None:
        print(f"best: {best.strategy} ({best.correct or 0:.0%}, p50 {best.p50_s or 0:.2f} s)")


if __name__ == "__main__":
    main()
