"""Compare's corrections as an evaluation question set: where fine-tuning's datasets are read as questions."""

from __future__ import annotations

from pathlib import Path

from core.evaluation.questions import EvalQuestion, QuestionSet, question_id
from core.finetune.datasets import list_datasets, read_dataset
from core.tables import text_key


def from_corrections(datasets_root: Path) -> QuestionSet:
    """Questions from Compare's history that were corrected ("Wrong answer"), the correction as expected answer."""
    questions: dict[str, EvalQuestion] = {}
    for name in list_datasets(datasets_root):
        for row in read_dataset(datasets_root, name):
            if "wrong_answer" in row and row.get("question") and row.get("answer"):
                q = str(row["question"]).strip()
                questions[text_key(q)] = EvalQuestion(question_id(q), q, str(row["answer"]).strip(), tag=name)
    return QuestionSet("corrections", tuple(questions.values()))
