"""Repeat penalty for the embedded model, chosen by the numbers: looping answers and correctness.

Run: .venv/bin/python bench/repeat_penalty.py [--penalties 1.0 1.1 1.2 1.3] [--limit 40]

The sample knowledge base is ingested into a temporary DATA_DIR; each sample question is asked
with the PE and RAG presets' exact messages (the app's templates and retrieval), greedy, once per
repeat penalty, straight through llama-cpp-python. Printed per preset and penalty: answers that
loop (a 4-word sequence three times or more, or the whole answer budget used), answers correct by
the evaluation's headline check, and the mean answer length in tokens.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import Settings  # noqa: E402
from core.engine import EmbeddedEngine  # noqa: E402
from core.evaluation.metrics import is_correct, tokens  # noqa: E402
from core.ingest import ingest  # noqa: E402
from core.models import embedded_models  # noqa: E402
from core.prompts import Source  # noqa: E402
from core.samples import ENGLISH  # noqa: E402
from core.store import Store  # noqa: E402
from core.strategies import PE_TEMPLATE, RAG_TEMPLATE, RAG_TOP_K  # noqa: E402
from core.template_library import TemplateLibrary  # noqa: E402

MAX_TOKENS = 256


def loops(text: str, n_tokens: int) -> bool:
    words = tokens(text)
    grams = Counter(tuple(words[i : i + 4]) for i in range(len(words) - 3))
    return n_tokens >= MAX_TOKENS or any(c >= 3 for c in grams.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--penalties", type=float, nargs="+", default=[1.0, 1.1, 1.2, 1.3])
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--presets", nargs="+", default=["PE", "RAG"], choices=["PE", "RAG"])
    args = parser.parse_args()
    os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="ragtune-bench-")
    settings = Settings.from_env()
    store = Store.open(settings, _embedder())
    store.create_kb(ENGLISH.kb_name, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    ingest(store, ENGLISH.kb_name, ENGLISH.uploads())
    templates = TemplateLibrary(settings.data_dir / "templates")
    llama = EmbeddedEngine().get(embedded_models(settings)[0]).llama
    questions = ENGLISH.questions()[: args.limit]
    print(f"{len(questions)} sample questions, greedy, max {MAX_TOKENS} tokens")
    print(f"{'preset':7} {'penalty':>7} {'loops':>6} {'correct':>8} {'mean tokens':>12}")
    for preset, template_name, retrieval in (("PE", PE_TEMPLATE, False), ("RAG", RAG_TEMPLATE, True)):
        if preset not in args.presets:
            continue
        template = templates.get(template_name)
        prompts = []
        for q in questions:
            sources = None
            if retrieval:
                hits = store.search(ENGLISH.kb_name, q.question, k=RAG_TOP_K)
                sources = [Source(h.filename, h.page, h.text, h.heading) for h in hits]
            prompts.append(template.render(q.question, sources))
        for penalty in args.penalties:
            looped = correct = total_tokens = 0
            for q, messages in zip(questions, prompts, strict=True):
                llama.reset()
                out = llama.create_chat_completion(
                    messages=messages,  # type: ignore[arg-type]
                    temperature=0.0,
                    max_tokens=MAX_TOKENS,
                    repeat_penalty=penalty,
                )
                text = str(out["choices"][0]["message"]["content"] or "")  # type: ignore[index]
                n = int(out["usage"]["completion_tokens"])  # type: ignore[index]
                looped += loops(text, n)
                correct += is_correct(text, q.answer)
                total_tokens += n
            print(
                f"{preset:7} {penalty:>7.2f} {looped:>6} {correct:>5}/{len(questions)} "
                f"{total_tokens / len(questions):>12.1f}",
                flush=True,
            )
    store.close()


def _embedder():  # type: ignore[no-untyped-def]
    from core.embeddings import load_bundled

    return load_bundled()


if __name__ == "__main__":
    main()
