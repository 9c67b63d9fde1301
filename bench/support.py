"""How well Compare's "Supported by" finds the sentence behind an answer (core.evaluation.support).

Run: .venv/bin/python bench/support.py [--threshold 0.55] [--skip-samples] [--tiny]

First, agreement with hand labels on real documents: tests/fixtures/support_labels.jsonl holds 24
questions on the Debian Reference (package debian-reference-en, its text edition, ingested with the
app's defaults), the top-2 chunks the RAG preset retrieved for each, and 72 answers labelled by hand
as supported by those chunks or not: the embedded model's RAG answer and two written ones per
question (right, wrong, restating the question; right but not in the retrieved text). Target: 90%.

Then, for each English sample question set (brackenridge; corvane and vellacourt held out): the knowledge
base is built in a temporary DATA_DIR with the app's defaults, the top-2 chunks retrieved as the RAG
preset does, and then
- the expected answer: is a supporting sentence found, and does it hold the answer (metrics.is_correct);
- another question's answer (the one 7 rows on): is support wrongly claimed for it?
No chat model runs: the answers are the question set's own.
"""

from __future__ import annotations

import argparse
import json
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
from core.evaluation.support import SUPPORTED_THRESHOLD, Embed, supporting_sentences  # noqa: E402
from core.ingest import ingest  # noqa: E402
from core.samples import ENGLISH, HOLDOUTS  # noqa: E402
from core.store import Store  # noqa: E402
from core.strategies import RAG_TOP_K  # noqa: E402

LABELS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "support_labels.jsonl"


def labelled_agreement(embed: Embed, threshold: float, limit: int | None = None) -> tuple[int, int]:
    """(agreeing, labelled) over the hand-labelled Debian Reference answers; prints each disagreement."""
    agree = total = 0
    counts = {(True, True): 0, (True, False): 0, (False, True): 0, (False, False): 0}
    for line in LABELS.read_text(encoding="utf-8").splitlines()[:limit]:
        row = json.loads(line)
        for a in row["answers"]:
            found = supporting_sentences(a["answer"], row["question"], row["chunks"], embed, threshold=threshold)
            counts[(a["supported"], bool(found))] += 1
            total += 1
            if bool(found) == a["supported"]:
                agree += 1
            else:
                said = f"supported by {' '.join(found[0].sentence.split())[:80]!r}" if found else "not supported"
                print(f"  {row['id']}: {a['answer'][:70]!r} labelled {a['supported']}, {said}")
    yes, no = counts[(True, True)] + counts[(True, False)], counts[(False, True)] + counts[(False, False)]
    print(f"Debian Reference, hand labels: agreement {agree}/{total} = {agree / total:.1%} (target 90%); "
          f"labelled supported: found {counts[(True, True)]}/{yes}; labelled not: said supported "
          f"{counts[(False, True)]}/{no}")  # fmt: skip
    return agree, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=SUPPORTED_THRESHOLD)
    parser.add_argument("--skip-samples", action="store_true", help="only the hand-labelled real-document answers")
    parser.add_argument("--tiny", action="store_true", help="3 labelled questions, 3 of the English sample's")
    args = parser.parse_args()
    limit = 3 if args.tiny else None
    model = load_bundled()
    embed = model.embeddings.embed_documents
    labelled_agreement(embed, args.threshold, limit)
    if args.skip_samples:
        return
    with Store.open(Settings.from_env(), model) as store:
        for sample in (ENGLISH,) if args.tiny else (ENGLISH, *HOLDOUTS):
            name = sample.kb_name
            store.create_kb(name, chunk_size=DEFAULT_CHUNK_SIZE, chunk_overlap=DEFAULT_CHUNK_OVERLAP)
            ingest(store, name, sample.uploads())
            questions = sample.questions()[:limit]
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
