"""The freshness experiment: edit a fact in a sample document and see which strategies follow.

The seed's argument for RAG on changing knowledge, run rather than told: change figures that the
sample facts also teach, re-ingest the document as a replacement, ask the affected questions
with RAG and with the fine-tuned model, then restore the document. RAG reads the edited text at
once; a model fine-tuned on the old facts repeats them until it is trained again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import EvaluationError
from core.evaluation import metrics
from core.evaluation.fact_edit import OwnFact, edited_chunk
from core.ingest import Upload, ingest
from core.progress import CancelFlag, Progress
from core.samples import KNOWLEDGE_BASE_DIR, load_questions
from core.strategies import Answer, Runtime, Strategy


@dataclass(frozen=True)
class FactChange:
    """Replace `old` with `new` in a document; the question whose answer it changes."""

    filename: str
    old: str
    new: str
    question_id: str
    old_answer: str
    new_answer: str


SAMPLE_CHANGES = (
    FactChange(
        "support_and_releases.txt", "warranty of three years", "warranty of four years", "q36", "three years",
        "four years",
    ),
    FactChange("support_and_releases.txt", "390 euros", "445 euros", "q37", "390 euros", "445 euros"),
)  # fmt: skip


@dataclass(frozen=True)
class FreshnessRow:
    """One question asked by one strategy before and after the edit."""

    question: str
    strategy: str
    old_answer: str
    new_answer: str
    before: str
    after: str
    retrieved_new: bool | None = None  # after the edit, the retrieved text states the new fact (None: no retrieval)

    @property
    def followed(self) -> bool:
        """After the edit the answer states the new fact and not the old one."""
        return metrics.contains(self.after, self.new_answer) and not metrics.contains(self.after, self.old_answer)

    @property
    def repeated_old(self) -> bool:
        return metrics.contains(self.after, self.old_answer)


def _ask(runtime: Runtime, strategy: Strategy, question: str, cancel: CancelFlag | None) -> Answer:
    return runtime.run(strategy, question, stop=cancel, save=False).answer()


def _text(answer: Answer) -> str:
    return f"(error: {answer.error})" if answer.error else answer.text


def edited(original: str, changes: Sequence[FactChange]) -> str:
    text = original
    for c in changes:
        if c.old not in text:
            raise EvaluationError(f"{c.filename} no longer says {c.old!r}; the freshness experiment cannot edit it.")
        text = text.replace(c.old, c.new)
    return text


def run_freshness(
    runtime: Runtime,
    kb: str,
    strategies: Sequence[Strategy],
    *,
    changes: Sequence[FactChange] = SAMPLE_CHANGES,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> list[FreshnessRow]:
    """Ask, edit and re-ingest, ask again, restore; the document is restored whatever happens.

    Raises:
        EvaluationError: the knowledge base lacks the sample document, or it was edited by hand.
    """
    store = runtime.store
    if store is None:
        raise EvaluationError("Retrieval is unavailable, so the freshness experiment cannot run.")
    filenames = sorted({c.filename for c in changes})
    if len(filenames) != 1:
        raise EvaluationError("The freshness experiment edits one document at a time.")
    filename = filenames[0]
    path = KNOWLEDGE_BASE_DIR / filename
    if store.find_document(kb, filename=filename) is None or not path.is_file():
        raise EvaluationError(f"{kb} has no sample document {filename}; load the sample on the Documents page first.")
    original = path.read_bytes()
    questions = {q.id: q.question for q in load_questions()}
    asked = [(c, questions[c.question_id]) for c in changes]
    steps = 2 * len(asked) * len(strategies) + 2
    step = 0

    def tick(message: str) -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(step, steps, message)

    before = {}
    for c, q in asked:
        for s in strategies:
            before[(c.question_id, s.name)] = _text(_ask(runtime, s, q, cancel))
            tick(f"Before the edit: {s.name} on {c.question_id}")
    rows = []
    try:
        text = edited(original.decode("utf-8"), changes)
        ingest(store, kb, [Upload(filename, text.encode("utf-8"))])
        tick(f"Re-ingested {filename} with the changed facts")
        for c, q in asked:
            for s in strategies:
                after = _ask(runtime, s, q, cancel)
                retrieved = metrics.contains(" ".join(h.text for h in after.sources), c.new) if s.retrieval else None
                was = before[(c.question_id, s.name)]
                rows.append(FreshnessRow(q, s.name, c.old_answer, c.new_answer, was, _text(after), retrieved))
                tick(f"After the edit: {s.name} on {c.question_id}")
    finally:
        ingest(store, kb, [Upload(filename, original)])
        tick(f"Restored {filename}")
    return rows


def run_fact_change(
    runtime: Runtime,
    fact: OwnFact,
    new: str,
    strategies: Sequence[Strategy],
    backup_dir: Path,
    *,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> list[FreshnessRow]:
    """The experiment on the user's own knowledge base: one fact changed in one chunk, then put back.

    Each strategy answers the question before and after the edit; the chunk is restored byte for byte
    whatever happens (`fact_edit.edited_chunk`). Stopped, it returns the rows finished so far.

    Raises:
        EvaluationError: retrieval is unavailable, or the chunk no longer holds the sentence.
    """
    if runtime.store is None:
        raise EvaluationError("Retrieval is unavailable, so the freshness experiment cannot run.")
    steps, done = 2 * len(strategies) + 2, 0

    def tick(message: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, steps, message)

    def stopped() -> bool:
        return cancel is not None and cancel.is_set()

    before: dict[str, str] = {}
    for s in strategies:
        if stopped():
            return []
        before[s.name] = _text(_ask(runtime, s, fact.question, cancel))
        tick(f"Before the edit: {s.name}")
    rows = []
    with edited_chunk(runtime.store, fact.kb, fact, new, backup_dir):
        tick(f"Changed {fact.old!r} to {new.strip()!r} in {fact.filename}, part {fact.chunk_index + 1}")
        for s in strategies:
            if stopped():
                break
            after = _ask(runtime, s, fact.question, cancel)
            retrieved = metrics.contains(" ".join(h.text for h in after.sources), new) if s.retrieval else None
            rows.append(FreshnessRow(fact.question, s.name, fact.old, new.strip(), before[s.name], _text(after),
                                     retrieved))  # fmt: skip
            tick(f"After the edit: {s.name}")
    tick(f"Restored {fact.filename}, part {fact.chunk_index + 1}")
    return rows


def followed_share(rows: Sequence[FreshnessRow]) -> dict[str, float]:
    """Per strategy, the share of changed facts answered with the new value (for the recommendation)."""
    out: dict[str, list[bool]] = {}
    for r in rows:
        out.setdefault(r.strategy, []).append(r.followed)
    return {k: sum(v) / len(v) for k, v in out.items()}
