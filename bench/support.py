"""How well Compare's "Supported by" finds the sentence behind an answer (core.evaluation.support).

Run: .venv/bin/python bench/support.py [--threshold 0.55]

For each English sample question set (brackenridge; corvane and vellacourt held out): the knowledge
base is built in a temporary DATA_DIR with the app's defaults, the top-2 chunks retrieved as the RAG
preset does, and then
- the expected answer: is a supporting sentence found, and does it hold the answer (metrics.is_correct);
- another question's answer (the one 7 rows on): is support wrongly claimed for it?
No chat model runs: the answers are the question set's own.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="bench-support-")
os.environ["OLLAMA_HOST"] = "off"

from core.config import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, Settings  # noqa: E402
from core.embeddings import load_bundled  # noqa: E402
from core.evaluation import metrics  # noqa: E402
from core.evaluation.support import SUPPORTED_THRESHOLD, supporting_sentences  # noqa: E402
from core.ingest import ingest  # noqa: E402
from core.samples import ENGLISH, HOLDOUTS  # noqa: E402
from core.store import Store  # noqa: E402
from core.strategies import RAG_TOP_K  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=SUPPORTED_THRESHOLD)
    args = parser.parse_args()
    model = load_bundled()
    embed = model.embeddings.embed_documents
    with Store.open(Settings.from_env(), model) as store:
        for sample in (ENGLISH, *HOLDOUTS):
            name = sample.kb_name
            store.create_kb(name, chunk_size=DEFAULT_CHUNK_SIZE, chunk_overlap=DEFAULT_CHUNK_OVERLAP)
            ingest(store, name, sample.uploads())
            questions = sample.questions()
            found = holds = wrong = 0
            for i, q in enumerate(questions):
                chunks = [h.text for h in store.search(name, q.question, k=RAG_TOP_K)]
                supports = supporting_sentences(q.answer, q.question, chunks, embed, threshold=args.threshold)
                if supports:
                    found += 1
                    holds += metrics.is_correct(supports[0].sentence, q.answer)
                else:
                    print(f"  {name}: no support for {q.answer!r} ({q.question})")
                other = questions[(i + 7) % len(questions)].answer
                if claimed := supporting_sentences(other, q.question, chunks, embed, threshold=args.threshold):
                    wrong += 1
                    print(f"  {name}: {other!r} said supported by {' '.join(claimed[0].sentence.split())!r}")
            n = len(questions)
            print(f"{name}: expected answer supported {found}/{n} (the sentence holds it by is_correct: {holds}); "
                  f"another question's answer said supported {wrong}/{n}")  # fmt: skip


if __name__ == "__main__":
    main()
