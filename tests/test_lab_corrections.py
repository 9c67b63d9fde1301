"""Compare's corrections become an evaluation question set."""

from __future__ import annotations

import json
from pathlib import Path

from core.finetune.datasets import Correction, add_correction
from core.lab.corrections import from_corrections


def test_corrections_from_compare_become_questions(data_dir: Path) -> None:
    root = data_dir / "datasets"
    add_correction(root, "corrections", Correction("How old is Quill House?", "Built in 1889.", "1900", "PE", "m"))
    add_correction(root, "corrections", Correction("How old is Quill House?", "Built in 1889!", "1900", "PE", "m"))
    (root / "plain.jsonl").write_text(json.dumps({"question": "not a correction", "answer": "x"}) + "\n")
    [q] = from_corrections(root).questions
    assert (q.question, q.answer, q.tag) == ("How old is Quill House?", "Built in 1889!", "corrections")
