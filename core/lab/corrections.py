"""Where evaluation's questions and fine-tuning's datasets meet.

Compare's corrections become a question set; an evaluation's failures become a dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core.evaluation.questions import EvalQuestion, QuestionSet, question_id
from core.finetune.datasets import Pair, list_datasets, read_dataset, save_pairs
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


def save_failures(datasets_root: Path, name: str, failures: Sequence[EvalQuestion]) -> Path:
    """The questions a strategy got wrong (`core.evaluation.report.failures`) as a fine-tuning dataset of their pairs.

    Raises:
        DatasetError: no failures, or a bad name; DatasetExistsError when a dataset of that name holds other pairs.
    """
    return save_pairs(datasets_root, name, [Pair(q.question, q.answer) for q in failures])
