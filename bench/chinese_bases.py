"""Which embedded base answers Chinese best: RAG with SmolLM2-135M and with Gemma 3 270M on the same excerpts.

For each set, its knowledge base is built as a new user builds it (the app's defaults: a Chinese document gets
multilingual E5 and jieba) and asked through the Evaluate runner by the RAG preset as Compare builds it, once
per embedded base and nothing else changed: the same retrieval, hence the same excerpts; SmolLM2 gets its chat
template, Gemma (a pre-trained base) the template's completion form ("文本：… 问题：… 答案："). Sets: the Chinese
sample (`qingwu`, 30 questions), the Debian Reference zh-cn (`samples/real/questions.zh-cn.jsonl`, 30
questions on Debian's PDF, as `bench/real_docs.py` reads it) and, for the record, the English sample (40).
Printed per set and base: correct (the headline check), the median answer time and the total time.
`core.models.CHINESE_DEFAULT` is the base this measures best on the Chinese sets.

Measured 2 Dec 2026, 2 cores shared with other work (nice 10), hybrid retrieval, top-2 excerpts:
                                     SmolLM2-135M                     gemma-3-270m
  qingwu (30)                        3/30 (10%)  p50 3.97 s  159 s    5/30 (17%)  p50 0.82 s   29 s
  Debian zh-cn, questions' 28 pages  10/30 (33%) p50 4.78 s  169 s    8/30 (27%)  p50 1.70 s  183 s
A tie on the Chinese sets (13/60 each); several of SmolLM2's counted answers copy a whole chunk with English
around it, and about 6 of Gemma's 30 Debian answers loop ("1. 1. 1. …"). The English sample was not run then.

Run: .venv/bin/python bench/chinese_bases.py [--sets qingwu,debian-zh,brackenridge] [--limit N] [--whole]
     [--data-dir DIR] (a DATA_DIR kept between runs reuses its knowledge bases)
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Offline, offline, sample_kb  # noqa: E402
from bench.real_docs import PDF, find_file, load_set, tiny_pdf  # noqa: E402
from core import samples  # noqa: E402
from core.evaluation import questions as qs  # noqa: E402
from core.evaluation.report import load_run, summarize  # noqa: E402
from core.evaluation.runner import EvalRequest, run_evaluation, start_run  # noqa: E402
from core.gemma import GEMMA_NAME  # noqa: E402
from core.ingest import Upload, ingest  # noqa: E402
from core.models import BUNDLED_NAME  # noqa: E402
from core.strategies import presets  # noqa: E402

BASES = (BUNDLED_NAME, GEMMA_NAME)


def kb_names(stack: Offline) -> list[str]:
    return [k.name for k in stack.store.list_kbs()]


def sample_set(stack: Offline, sample: samples.Sample, limit: int | None) -> tuple[str, list[qs.EvalQuestion]]:
    """A sample's knowledge base with the settings Load sample uses, and its question set."""
    kb = sample_kb(stack, sample)
    return kb, list(qs.sample_set(kb).questions[:limit])


def debian_set(stack: Offline, limit: int | None, whole: bool) -> tuple[str, list[qs.EvalQuestion]] | None:
    """The Debian Reference zh-cn and its 30 questions; unless `whole`, only the pages they ask about (and a
    contents page), as `bench/real_docs.py --tiny` cuts it: the whole PDF takes most of an hour to embed on 2
    shared cores, and both bases read the same excerpts either way."""
    kb = "debian-zh" if whole else "debian-zh-cut"
    questions = load_set("zh-cn", limit)
    pdf = find_file("zh-cn", PDF.format(lang="zh-cn"), install=False)
    if pdf is None:
        print("  debian-zh skipped: debian-reference-zh-cn is not installed (bench/real_docs.py --install)")
        return None
    data = pdf.read_bytes()
    if not whole:
        data, questions = tiny_pdf(data, questions)
    if kb not in kb_names(stack):
        s = stack.settings
        stack.store.create_kb(kb, chunk_size=s.chunk_size, chunk_overlap=s.chunk_overlap)
        started = time.perf_counter()
        [report] = ingest(stack.store, kb, [Upload(pdf.name, data)])
        print(f"  {pdf.name}: {report.pages} pages, {report.chunks} chunks in {time.perf_counter() - started:.0f} s")
    return kb, questions


def measure(stack: Offline, kb: str, questions: list[qs.EvalQuestion]) -> None:
    """RAG on each embedded base over one set, in one evaluation run (the same excerpts for both)."""
    rag = presets(stack.catalog.available(), kb)["RAG"].strategy
    strategies = tuple(replace(rag, name=f"RAG {base}", model=f"llama.cpp:{base}") for base in BASES)
    started = time.perf_counter()
    run_id = start_run(stack.runtime, EvalRequest(f"bases {kb}", kb, tuple(questions), strategies))
    run_evaluation(stack.runtime, run_id, embedder=stack.embedder.embeddings)
    run = load_run(stack.runtime.records, run_id)
    print(f"  {kb} ({len(questions)} questions, {time.perf_counter() - started:.0f} s in all)")
    for summary in summarize(run):
        right = round((summary.correct or 0) * summary.answered)
        total = sum(c.total_s or 0.0 for (_, name), c in run.cells.items() if name == summary.strategy)
        print(
            f"    {summary.strategy:<32} correct {right}/{summary.answered} ({(summary.correct or 0):.0%})"
            f"  p50 {summary.total_p50 or 0:.2f} s  total {total:.0f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="qingwu,debian-zh,brackenridge")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--whole", action="store_true", help="the whole Debian PDF, not the questions' pages")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="chinese-bases-"))
    stack = offline(data_dir)
    for name in args.sets.split(","):
        if name == "debian-zh":
            found = debian_set(stack, args.limit, args.whole)
        else:
            found = sample_set(stack, samples.SAMPLES[name], args.limit)
        if found is not None:
            measure(stack, *found)


if __name__ == "__main__":
    main()
