"""What a run measured: per-strategy summaries, the matrix, run-to-run changes, CSV/JSON export and import."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from core.errors import EvaluationError
from core.evaluation import metrics
from core.evaluation.questions import EvalQuestion
from core.evaluation.runner import EvalRequest
from core.records import AnswerRow, Records, RunRow
from core.strategies import Strategy

FORMAT = "ragtune-evaluation/1"


@dataclass(frozen=True)
class Cell:
    """One answer of a run, with its metrics."""

    question_id: str
    strategy: str
    answer: str
    error: str | None
    ttft_s: float | None
    total_s: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    metrics: dict[str, Any]
    sources: list[dict[str, Any]] = field(default_factory=list)
    prompt: str = ""
    template_version: int = 0

    @property
    def correct(self) -> bool:
        return bool(self.metrics.get("correct")) and self.error is None


@dataclass
class RunData:
    """A run as the page and the exports see it: settings, questions, strategies and answers."""

    id: int | None
    name: str
    created: str
    status: str
    question_set: str
    request: EvalRequest
    cells: dict[tuple[str, str], Cell]
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. training seconds per fine-tuned model

    @property
    def questions(self) -> tuple[EvalQuestion, ...]:
        return self.request.questions

    @property
    def strategies(self) -> tuple[Strategy, ...]:
        return self.request.strategies

    def cell(self, question_id: str, strategy: str) -> Cell | None:
        return self.cells.get((question_id, strategy))


def _cell(row: AnswerRow) -> Cell:
    return Cell(
        question_id=row.question_id or "",
        strategy=row.strategy,
        answer=row.answer,
        error=row.error,
        ttft_s=row.ttft_s,
        total_s=row.total_s,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        metrics=row.metrics or {},
        sources=list(row.detail.get("sources", [])),
        prompt=str(row.detail.get("prompt", "")),
        template_version=row.template_version,
    )


def load_run(records: Records, run_id: int) -> RunData:
    run = records.get_run(run_id)
    if run is None:
        raise EvaluationError(f"There is no evaluation run {run_id}; it may have been deleted.")
    return _from_row(run, records.run_answers(run_id))


def _from_row(run: RunRow, answers: Sequence[AnswerRow]) -> RunData:
    request = EvalRequest.from_spec(run.name, run.question_set, run.spec)
    expected = {q.id: q.answer for q in request.questions}
    cells = {}
    for a in answers:
        c = _cell(a)
        if c.question_id in expected:  # text checks as defined now, so old runs compare fairly with new ones
            text = c.answer if c.error is None else ""
            c = replace(c, metrics=c.metrics | metrics.text_scores(text, expected[c.question_id]))
        cells[(c.question_id, c.strategy)] = c
    return RunData(run.id, run.name, run.created, run.status, run.question_set, request, cells)


@dataclass(frozen=True)
class Summary:
    """One strategy's numbers over a run (rates are 0-1; None where nothing could be measured)."""

    strategy: str
    model: str
    retrieval: bool
    top_k: int
    fine_tuned: bool
    answered: int
    errors: int
    correct: float | None
    exact: float | None
    contains: float | None
    f1: float | None
    similarity: float | None
    supported: float | None
    hit_at_1: float | None
    hit_at_k: float | None
    mrr: float | None
    ttft_p50: float | None
    total_p50: float | None
    total_p95: float | None
    tokens_in: float | None
    tokens_out: float | None
    judge: float | None = None  # share the LLM judge called correct (None without a judge)


def _rate(values: Sequence[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(run: RunData) -> list[Summary]:
    """Per-strategy figures, in the run's column order; errors count as wrong answers."""
    out = []
    for s in run.strategies:
        cells = [c for q in run.questions if (c := run.cell(q.id, s.name)) is not None]
        ok = [c for c in cells if c.error is None]
        scored = [c for c in cells if c.metrics.get("retrieval_scored")]
        ranks = [c.metrics.get("rank") for c in scored]
        sims = [float(c.metrics["similarity"]) for c in ok if c.metrics.get("similarity") is not None]
        sup = [float(c.metrics["supported"]) for c in ok if c.metrics.get("supported") is not None]
        totals = [c.total_s for c in ok if c.total_s is not None]
        verdicts = [bool(c.metrics["judge"]) for c in cells if c.metrics.get("judge") is not None]
        out.append(
            Summary(
                strategy=s.name,
                model=s.model,
                retrieval=s.retrieval,
                top_k=s.top_k,
                fine_tuned="+" in s.model,
                answered=len(cells),
                errors=len(cells) - len(ok),
                correct=_rate([c.correct for c in cells]),
                exact=_rate([bool(c.metrics.get("exact")) for c in cells]),
                contains=_rate([bool(c.metrics.get("contains")) for c in cells]),
                f1=metrics.mean([float(c.metrics.get("f1", 0.0)) for c in cells]),
                similarity=metrics.mean(sims),
                supported=metrics.mean(sup),
                hit_at_1=_rate([metrics.hit_at(r, 1) for r in ranks]),
                hit_at_k=_rate([metrics.hit_at(r, s.top_k) for r in ranks]),
                mrr=metrics.mean([metrics.reciprocal_rank(r) for r in ranks]) if ranks else None,
                ttft_p50=metrics.percentile([c.ttft_s for c in ok if c.ttft_s is not None], 50),
                total_p50=metrics.percentile(totals, 50),
                total_p95=metrics.percentile(totals, 95),
                tokens_in=metrics.mean([float(c.prompt_tokens) for c in ok if c.prompt_tokens is not None]),
                tokens_out=metrics.mean([float(c.completion_tokens) for c in ok if c.completion_tokens is not None]),
                judge=_rate(verdicts),
            )
        )
    return out


def outcomes(run: RunData) -> dict[str, dict[str, bool]]:
    """Per strategy, question id -> answered correctly, for the questions it has answered (errors are wrong)."""
    return {
        s.name: {q.id: c.correct for q in run.questions if (c := run.cell(q.id, s.name)) is not None}
        for s in run.strategies
    }


def matrix(run: RunData, *, failures_only: bool = False, disagree_only: bool = False) -> list[dict[str, Any]]:
    """Rows of the results matrix: the question, then per strategy (correct, score) or None if unanswered.

    failures_only keeps questions some strategy got wrong; disagree_only keeps those where the
    strategies' verdicts differ.
    """
    rows = []
    for q in run.questions:
        verdicts: dict[str, tuple[bool, float] | None] = {}
        for s in run.strategies:
            c = run.cell(q.id, s.name)
            verdicts[s.name] = None if c is None else (c.correct, float(c.metrics.get("f1", 0.0)))
        known = [v[0] for v in verdicts.values() if v is not None]
        if failures_only and all(known):
            continue
        if disagree_only and len(set(known)) < 2:
            continue
        rows.append({"question": q, "cells": verdicts})
    return rows


def failures(run: RunData, strategy: str) -> list[EvalQuestion]:
    """The questions a strategy answered wrongly (or with an error), for the fine-tuning loop."""
    return [q for q in run.questions if (c := run.cell(q.id, strategy)) is not None and not c.correct]


@dataclass(frozen=True)
class Change:
    strategy: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before


def compare_runs(new: RunData, old: RunData) -> tuple[list[Change], list[dict[str, Any]]]:
    """Correctness per strategy present in both runs, and the questions whose verdict changed.

    Raises:
        EvaluationError: the runs asked different question sets.
    """
    if new.request.set_hash != old.request.set_hash:
        raise EvaluationError("These runs asked different versions of the question set; compare runs of one version.")
    before = {s.strategy: s.correct for s in summarize(old)}
    shared = [s for s in summarize(new) if s.strategy in before]
    changes = [Change(s.strategy, before[s.strategy], s.correct) for s in shared]
    flips = []
    for q in new.questions:
        for s in shared:
            a, b = old.cell(q.id, s.strategy), new.cell(q.id, s.strategy)
            if a is not None and b is not None and a.correct != b.correct:
                flips.append({"question": q.question, "strategy": s.strategy, "before": a.correct, "after": b.correct,
                              "before_answer": a.answer, "after_answer": b.answer})  # fmt: skip
    return changes, flips


CSV_COLUMNS = ["question_id", "question", "expected", "source", "page", "strategy", "model", "answer", "error",
               "correct", "exact", "contains", "f1", "similarity", "supported", "rank", "ttft_s", "total_s",
               "prompt_tokens", "completion_tokens"]  # fmt: skip


def to_csv(run: RunData) -> str:
    """One row per answer."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    models = {s.name: s.model for s in run.strategies}
    for q in run.questions:
        for s in run.strategies:
            c = run.cell(q.id, s.name)
            if c is None:
                continue
            row: dict[str, Any] = {k: c.metrics.get(k) for k in ("exact", "contains", "f1", "similarity",
                                                                  "supported", "rank")}  # fmt: skip
            row |= {
                "question_id": q.id,
                "question": q.question,
                "expected": q.answer,
                "source": q.source or "",
                "page": q.page or "",
                "strategy": s.name,
                "model": models[s.name],
                "answer": c.answer,
                "error": c.error or "",
                "correct": c.correct,
                "ttft_s": c.ttft_s,
                "total_s": c.total_s,
                "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens,
            }
            writer.writerow(row)
    return out.getvalue()


def to_json(run: RunData) -> str:
    """The run with its settings and all answers; `from_json` reads it back."""
    doc = {
        "format": FORMAT,
        "id": run.id,
        "name": run.name,
        "created": run.created,
        "status": run.status,
        "question_set": run.question_set,
        "set_hash": run.request.set_hash,
        "spec": run.request.spec(),
        "answers": [asdict(c) for c in run.cells.values()],
    }
    return json.dumps(doc, ensure_ascii=False, indent=1)


def from_json(text: str | bytes) -> RunData:
    """A run exported by `to_json` (shown read-only; it is not stored)."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise EvaluationError(f"This is not an evaluation export (expected format {FORMAT!r}).")
        request = EvalRequest.from_spec(str(doc["name"]), str(doc["question_set"]), doc["spec"])
        cells = {(str(a["question_id"]), str(a["strategy"])): Cell(**a) for a in doc["answers"]}
        return RunData(doc.get("id"), str(doc["name"]), str(doc["created"]), str(doc["status"]),
                       str(doc["question_set"]), request, cells)  # fmt: skip
    except EvaluationError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        raise EvaluationError(
            f"The evaluation export cannot be read ({e}); export it again from the Evaluate page."
        ) from e
