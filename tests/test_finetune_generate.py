"""Questions drawn from a knowledge base: real questions with a short answer and the sentence behind it."""

from __future__ import annotations

import json
from pathlib import Path

from core.finetune import datasets
from core.finetune.datasets import Pair


def test_evidence_round_trips_and_old_files_load_without_it(data_dir: Path) -> None:
    folder = data_dir / "datasets"
    sentence = "The HX4 pump must be recalibrated every six months."
    pairs = [Pair("How often must the HX4 pump be recalibrated?", "every six months", evidence=sentence)]
    path = datasets.save_pairs(folder, "drawn", pairs)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [{"question": pairs[0].question, "answer": "every six months", "evidence": sentence}]
    assert datasets.load_pairs(folder, "drawn").pairs == pairs
    # Evidence is for review only: the dataset's version is its training content.
    assert datasets.content_hash(pairs) == datasets.content_hash([Pair(pairs[0].question, pairs[0].answer)])
    old = folder / "old.jsonl"
    old.write_text(json.dumps({"question": "Who founded it?", "answer": "Ilse Marrow."}) + "\n")
    assert datasets.load_pairs(folder, "old").pairs == [Pair("Who founded it?", "Ilse Marrow.")]
