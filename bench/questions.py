"""Questions drawn from the sample knowledge bases (core.finetune.generate), printed to be read.

Run: .venv/bin/python bench/questions.py [brackenridge corvane vellacourt ...] [--all]

For each knowledge base: its documents chunked with the app's defaults (no embedding needed), how many
distinct sentences there are, how many gave at least one question, and the pairs (question, answer,
the sentence it came from). --all also lists the sentences that gave none, to see what the rules miss.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import documents  # noqa: E402
from core.config import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE  # noqa: E402
from core.finetune import generate  # noqa: E402
from core.samples import ENGLISH, HOLDOUTS, SAMPLES  # noqa: E402
from core.store import SearchHit  # noqa: E402


def hits(kb: str) -> list[SearchHit]:
    out = []
    for upload in SAMPLES[kb].uploads():
        doc = documents.parse(upload.data, upload.filename)
        for c in documents.split(doc, chunk_size=DEFAULT_CHUNK_SIZE, chunk_overlap=DEFAULT_CHUNK_OVERLAP):
            out.append(SearchHit(c.text, 1.0, c.doc_id, c.filename, c.page, c.index, c.heading))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kbs", nargs="*", default=[s.kb_name for s in (ENGLISH, *HOLDOUTS)])
    parser.add_argument("--all", action="store_true", help="also list the sentences that gave no question")
    args = parser.parse_args()
    for kb in args.kbs:
        chunks = hits(kb)
        proper = generate.proper_words(s for h in chunks for s in generate.sentences(h.text))
        topic = generate.topic_words([s for h in chunks for s in generate.sentences(h.text)])
        seen: dict[str, list[tuple[str, str]]] = {}
        for h in chunks:
            for sentence in generate.sentences(h.text):
                seen.setdefault(sentence, generate.questions_for(sentence, proper=proper, topic=topic))
        pairs = generate.pairs_from_hits(chunks, limit=10_000)
        gave = sum(bool(qs) for qs in seen.values())
        print(f"## {kb}: {len(seen)} sentences, {gave} gave questions ({gave / max(len(seen), 1):.0%}), "
              f"{len(pairs)} pairs")  # fmt: skip
        for p in pairs:
            print(f"Q: {p.question}\n   A: {p.answer}\n   from: {p.evidence}")
        if args.all:
            print(f"\n### {kb}: sentences that gave no question")
            for sentence, qs in seen.items():
                if not qs:
                    print(f"- {sentence}")
        print()


if __name__ == "__main__":
    main()
