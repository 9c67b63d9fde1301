"""Compare's corrections become an evaluation question set; an evaluation's failures become a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import DatasetError
from core.evaluation.questions import EvalQuestion
from core.finetune.datasets import Correction, add_correction, load_pairs
from core.lab.corrections import from_corrections, save_failures


def test_corrections_from_compare_become_questions(data_dir: Path) -> None:
    root = data_dir / "datasets"
    add_correction(root, "corrections", Correction("How old is Quill House?", "Built in 1889.", "1900", "PE", "m"))
    add_correction(root, "corrections", Correction("How old is Quill House?", "Built in 1889!", "1900", "PE", "m"))
    (root / "plain.jsonl").write_text(json.dumps({"question": "not a correction", "answer": "x"}) + "\n")
    [q] = from_corrections(root).questions
    assert (q.question, q.answer, q.tag) == ("How old is Quill House?", "Built in 1889!", "corrections")


def test_an_evaluations_failures_become_a_dataset_of_their_pairs(data_dir: Path) -> None:
    root = data_dir / "datasets"
    pairs = [("How old is Quill House?", "Built in 1889."), ("Who keeps it?", "Ada.")]
    save_failures(root, "failures-pe", [EvalQuestion(f"q{n}", q, a) for n, (q, a) in enumerate(pairs)])
    assert [(p.question, p.answer) for p in load_pairs(root, "failures-pe").pairs] == pairs
    with pytest.raises(DatasetError, match="empty"):
        save_failures(root, "failures-rag", [])
