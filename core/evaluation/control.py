"""Forgetting: the control set of general questions, the base model versus each fine-tuned one.

The control run asks every control question with the same plain template (the FT preset's) on
the base and on each fine-tuned model. Only the questions the base answers correctly count, so
the figure measures what fine-tuning lost, not what a 135M model never knew.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core import adapters
from core.evaluation.metrics import Forgetting, forgetting
from core.evaluation.questions import CONTROL_SET
from core.evaluation.report import RunData
from core.models import ModelInfo
from core.strategies import FT_TEMPLATE, Strategy

BASE_COLUMN = "Base"
CONTROL_MAX_TOKENS = 48  # one-word answers; keeps a 40-question control run short


def control_strategies(models: Sequence[ModelInfo]) -> list[Strategy]:
    """The base (first embedded model without an adapter) and every fine-tuned model, plain template, no retrieval."""
    base = next((m for m in models if m.backend == "llama.cpp" and not m.fine_tuned), None)
    if base is None:
        return []
    tuned = [m for m in models if m.fine_tuned and m.path == base.path]
    columns = [Strategy(BASE_COLUMN, base.id, FT_TEMPLATE, max_tokens=CONTROL_MAX_TOKENS)]
    for m in tuned:
        columns.append(Strategy(f"FT {m.id.rsplit('+', 1)[-1]}", m.id, FT_TEMPLATE, max_tokens=CONTROL_MAX_TOKENS))
    return columns


def forgetting_by_model(run: RunData) -> dict[str, Forgetting]:
    """Per fine-tuned model id of a control run: its accuracy on the questions the base got right."""
    if run.question_set != CONTROL_SET:
        return {}
    base = next((s for s in run.strategies if s.name == BASE_COLUMN), None)
    if base is None:
        return {}
    out = {}
    for s in run.strategies:
        if s is base:
            continue
        pairs = [
            (b.correct, t.correct)
            for q in run.questions
            if (b := run.cell(q.id, base.name)) is not None and (t := run.cell(q.id, s.name)) is not None
        ]
        out[s.model] = forgetting([p[0] for p in pairs], [p[1] for p in pairs])
    return out


def base_known(run: RunData) -> int | None:
    """How many control questions the base answered correctly (the questions forgetting is measured on)."""
    if run.question_set != CONTROL_SET or not any(s.name == BASE_COLUMN for s in run.strategies):
        return None
    return sum(1 for q in run.questions if (c := run.cell(q.id, BASE_COLUMN)) is not None and c.correct)


def training_seconds(data_dir: Path, models: Sequence[ModelInfo]) -> dict[str, float]:
    """Training time per fine-tuned model id, from each adapter's manifest."""
    by_path = {a.path: a for a in adapters.list_adapters(data_dir)}
    out = {}
    for m in models:
        if m.adapter is not None and m.adapter in by_path:
            out[m.id] = by_path[m.adapter].manifest.train_seconds or 0.0
    return out
