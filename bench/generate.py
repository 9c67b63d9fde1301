"""Generation benchmark: Strategy.run against raw llama_cpp create_chat_completion, same prompt and model.

Run: make bench-generate   (or .venv/bin/python bench/generate.py --rounds 5)

Both sides stream the same messages from the same loaded model, greedy, with the KV cache
reset before every run (llama.cpp reuses a matching prompt prefix, which would flatter
whichever side ran second), and both call llama.cpp from the one thread the app gives it
(`core.engine.LlamaThread`: calls from several threads slow each other down, which is what
the app fixed). Reported: median time to first token and decode tokens/s (first to last text piece,
on both sides), and their ratios app/raw (target: decode >= 0.95); then the whole answer, to the app's
Answer with its history record saved. Then the retrieval step over a knowledge base of 10,000 chunks:
`Store.search` (dense) against the raw embedding + `query_points` on the same collection, and
the knowledge base's own (hybrid) search for the record: median milliseconds.

Run: .venv/bin/python bench/generate.py [--rounds 5] [--tiny]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench.common import Figure, summary  # noqa: E402
from core.config import Settings  # noqa: E402
from core.documents import Chunk  # noqa: E402
from core.embeddings import load_bundled  # noqa: E402
from core.engine import REPEAT_PENALTY, EmbeddedEngine, llama_thread  # noqa: E402
from core.models import BUNDLED_NAME, ModelCatalog  # noqa: E402
from core.records import Records  # noqa: E402
from core.search import DENSE  # noqa: E402
from core.store import DocumentRecord, Store  # noqa: E402
from core.strategies import Answer, Runtime, Strategy  # noqa: E402
from core.template_library import TemplateLibrary  # noqa: E402

QUESTION = "Write a short paragraph about why harbours measure the temperature and salinity of the sea."


def raw_run(llama, messages: list[dict[str, str]], max_tokens: int) -> tuple[float, float, float, int]:  # type: ignore[no-untyped-def]
    """(time to first token, decode tokens/s, total time, tokens) straight from llama-cpp-python."""
    return llama_thread().call(raw_on_thread, llama, messages, max_tokens)


def raw_on_thread(llama, messages: list[dict[str, str]], max_tokens: int) -> tuple[float, float, float, int]:  # type: ignore[no-untyped-def]
    llama.reset()
    start = time.perf_counter()
    first = None
    parts = []
    for part in llama.create_chat_completion(
        messages=messages, stream=True, temperature=0.0, max_tokens=max_tokens, repeat_penalty=REPEAT_PENALTY
    ):
        delta = part["choices"][0]["delta"].get("content")
        if delta:
            last = time.perf_counter()
            first = first or last
            parts.append(delta)
    end = time.perf_counter()
    tokens = len(llama.tokenize("".join(parts).encode(), add_bos=False, special=True))
    assert first is not None
    return first - start, (tokens - 1) / (last - first), end - start, tokens


def app_run(runtime: Runtime, strategy: Strategy, llama) -> tuple[float, float, float, int, Answer]:  # type: ignore[no-untyped-def]
    llama.reset()
    start = time.perf_counter()
    first = None
    reply = runtime.run(strategy, QUESTION)
    for _ in reply:
        last = time.perf_counter()
        first = first or last
    answer = reply.answer()
    end = time.perf_counter()
    assert answer.error is None and first is not None, answer
    tokens = answer.completion_tokens or 0
    return first - start, (tokens - 1) / (last - first), end - start, tokens, answer


def retrieval_bench(root: Path, n_chunks: int, queries: int) -> tuple[float, float, float, float]:
    """Median ms at n_chunks: Store.search dense, raw embedding + query_points, embedding alone, default search."""
    embedder = load_bundled()
    store = Store.open(Settings.from_env(data_dir=root), embedder)
    kb = store.create_kb("big", chunk_size=800, chunk_overlap=120)
    rng = random.Random(7)
    doc_id = "0" * 32
    # Search cost does not depend on what the vectors mean: random unit vectors stand in for the chunks.
    chunks = [Chunk(doc_id, "big.txt", 1 + i // 20, i, f"chunk {i} of rule {i % 97}", 0, 8) for i in range(n_chunks)]
    vectors = []
    for _ in chunks:
        v = [rng.gauss(0, 1) for _ in range(embedder.dimension)]
        norm = sum(x * x for x in v) ** 0.5
        vectors.append([x / norm for x in v])
    store.upsert_chunks("big", chunks, vectors)
    store.commit(DocumentRecord("big", doc_id, "big.txt", "text", 500, n_chunks, 0, "now"))
    assert store.count_chunks("big") == n_chunks
    texts = [f"What does rule {i} say about harbour gates?" for i in range(queries)]
    store.search("big", "warm up", k=4)
    app, raw, embed, default = [], [], [], []
    for q in texts:
        t = time.perf_counter()
        store.search("big", q, k=4, mode="dense")
        app.append(time.perf_counter() - t)
        t = time.perf_counter()
        vector = embedder.embeddings.embed_query(q)
        embed.append(time.perf_counter() - t)
        store.client.query_points("big", query=vector, using=DENSE, limit=4)
        raw.append(time.perf_counter() - t)
        t = time.perf_counter()
        store.search("big", q, k=4)
        default.append(time.perf_counter() - t)
    print(f"  knowledge base's own retrieval mode: {kb.retrieval_mode}")
    store.close()
    return tuple(statistics.median(x) * 1000 for x in (app, raw, embed, default))  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--tiny", action="store_true", help="2 rounds, short answers, 200 chunks: checks that it runs")
    args = ap.parse_args()
    if args.tiny:
        args.rounds, args.max_tokens, args.chunks, args.queries = 2, 16, 200, 5

    root = Path(tempfile.mkdtemp(prefix="ragtune-bench-"))
    settings = Settings.from_env(data_dir=root, ollama_host=None)
    engine = EmbeddedEngine()
    catalog = ModelCatalog(settings, engine, None)
    runtime = Runtime(None, TemplateLibrary(root / "templates"), catalog, Records(root / "records.sqlite"))
    strategy = Strategy("PE", f"llama.cpp:{BUNDLED_NAME}", "Plain question", max_tokens=args.max_tokens)
    llama = engine.get(catalog.info(strategy.model)).llama

    *_, answer = app_run(runtime, strategy, llama)  # warm-up; also gives the exact messages
    raw_run(llama, answer.messages, args.max_tokens)
    raw_ttft, raw_tps, raw_total, app_ttft, app_tps, app_total = [], [], [], [], [], []
    for _ in range(args.rounds):
        t, s, total, n_raw = raw_run(llama, answer.messages, args.max_tokens)
        raw_ttft.append(t)
        raw_tps.append(s)
        raw_total.append(total)
        t, s, total, n_app, _ = app_run(runtime, strategy, llama)
        app_ttft.append(t)
        app_tps.append(s)
        app_total.append(total)
    print(
        f"model: {BUNDLED_NAME} (Q4_1, llama.cpp), prompt {answer.prompt_tokens} tokens, "
        f"answers of {n_raw} (raw) / {n_app} (app) tokens, {args.rounds} rounds, medians"
    )
    rt, rs, at, as_ = (statistics.median(x) for x in (raw_ttft, raw_tps, app_ttft, app_tps))
    print(f"raw create_chat_completion: first token {rt * 1000:7.1f} ms   decode {rs:6.1f} tokens/s")
    print(f"app Strategy.run:           first token {at * 1000:7.1f} ms   decode {as_:6.1f} tokens/s")
    rtot, atot = statistics.median(raw_total), statistics.median(app_total)
    print(f"whole answer: raw {rtot * 1000:.1f} ms, app {atot * 1000:.1f} ms")
    print(
        f"ratio app/raw: first token {at / rt:.3f} (target <= 1.10), tokens/s {as_ / rs:.3f} (target >= 0.95), "
        f"whole answer {atot / rtot:.3f}"
    )

    print(f"retrieval at {args.chunks} chunks (Qdrant local mode), {args.queries} queries, medians:")
    app, raw, embed, default = retrieval_bench(root / "retrieval", args.chunks, args.queries)
    print(f"  raw embed_query + query_points: {raw:.1f} ms (query embedding {embed:.1f} ms)")
    print(f"  app Store.search, dense:        {app:.1f} ms -> ratio app/raw {app / raw:.2f} (target <= 1.10)")
    print(f"  app Store.search, its own mode: {default:.1f} ms (dense + keywords, fused)")
    summary(
        Figure("generate.decode_ratio", as_ / rs, ">=", 0.95),
        Figure("generate.first_token_ratio", at / rt, "<=", 1.10),
        Figure("generate.retrieval_ratio", app / raw, "<=", 1.10),
    )


if __name__ == "__main__":
    main()
