"""Where a retrieval strategy's answers are lost: not retrieved, not in the excerpt, or not read.

A wrong answer was not retrieved, or retrieved but left out of what the model read, or read and still
answered wrong. A user fixing RAG needs to know which half to fix: retrieval (chunking, top-k, the embedding model) or
the reader (the model, the template, the excerpt). "Retrieved" means the expected answer is in the text
of a retrieved chunk, and "in the excerpt" that it is in the prompt the model was sent (the RAG template
reads the best sentences of each chunk, not the whole chunk). Both use the correctness check
(`metrics.is_correct`), so they need no source document named in the question set. The reading
efficiency is the share answered right of the questions whose prompt held the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.evaluation import metrics
from core.evaluation.report import Cell, RunData

NOT_RETRIEVED = "not retrieved"
NOT_IN_EXCERPT = "retrieved, not in the excerpt"
NOT_READ = "in the excerpt, not read"
# As the results matrix shows them, after ❌.
SHORT = {NOT_RETRIEVED: "not retrieved", NOT_IN_EXCERPT: "not in excerpt", NOT_READ: "not read"}


def retrieved(cell: Cell, expected: str) -> bool:
    """Whether a retrieved chunk holds the expected answer."""
    return any(metrics.is_correct(str(s.get("text", "")), expected) for s in cell.sources)


def in_excerpt(cell: Cell, expected: str) -> bool:
    """Whether the prompt the model was sent holds the expected answer."""
    return bool(cell.prompt) and metrics.is_correct(cell.prompt, expected)


def failure_kind(cell: Cell, expected: str) -> str | None:
    """Where a wrong answer of a retrieval strategy was lost; None when it is right or retrieved nothing."""
    if cell.correct or not cell.sources:
        return None
    if not retrieved(cell, expected):
        return NOT_RETRIEVED
    return NOT_READ if in_excerpt(cell, expected) else NOT_IN_EXCERPT


@dataclass(frozen=True)
class Reading:
    """One retrieval strategy over a run: how many answers were retrieved, reached the model, and were read."""

    strategy: str
    answered: int
    retrieved: int
    in_excerpt: int
    read: int  # answered right, of those in the excerpt

    @property
    def efficiency(self) -> float | None:
        return self.read / self.in_excerpt if self.in_excerpt else None

    def describe(self) -> str:
        eff = "–" if self.efficiency is None else f"{self.efficiency:.0%}"
        return (
            f"{self.strategy}: the answer was in the retrieved chunks for {self.retrieved} of {self.answered} "
            f"questions and in the excerpt the model read for {self.in_excerpt}; it answered {self.read} of "
            f"those right (reading efficiency {eff})"
        )


def reading(run: RunData) -> list[Reading]:
    """Per strategy that retrieved anything in this run, where its answers were found and read."""
    out = []
    for s in run.strategies:
        cells = [(c, q.answer) for q in run.questions if (c := run.cell(q.id, s.name)) is not None and c.sources]
        if not cells:
            continue
        held = [(c, e) for c, e in cells if in_excerpt(c, e)]
        out.append(
            Reading(
                s.name,
                len(cells),
                sum(retrieved(c, e) for c, e in cells),
                len(held),
                sum(c.correct for c, _ in held),
            )
        )
    return out
