"""The evaluation runner: every question of a set through every chosen strategy.

`run_evaluation` is a plain function (the bench and scripts call it without Streamlit;
`core.lab.evaluation` runs it in the background). Each finished answer is
stored at once with its metrics, so a stopped or crashed run resumes by asking only the cells
that have no answer yet (or whose answer was an error).

Embedded (llama.cpp) strategies share one worker, as they would take turns on the model lock
anyway; each Ollama strategy gets its own worker and runs in parallel.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from langchain_core.embeddings import Embeddings

from core.errors import EvaluationError
from core.evaluation import judge, metrics, support
from core.evaluation.questions import EvalQuestion, content_hash
from core.files import now_iso
from core.progress import CancelFlag
from core.strategies import Answer, Runtime, Strategy, answer_record

log = logging.getLogger(__name__)

SUPPORTED_THRESHOLD = support.SUPPORTED_THRESHOLD  # see core.evaluation.support


@dataclass(frozen=True)
class EvalRequest:
    """A question set and the strategies to ask it (strategy names are the matrix's columns: unique)."""

    name: str
    question_set: str
    questions: tuple[EvalQuestion, ...]
    strategies: tuple[Strategy, ...]
    supported_threshold: float = SUPPORTED_THRESHOLD
    judge_model: str | None = None  # an Ollama model that also grades every answer (optional)

    def check(self) -> None:
        if not self.questions:
            raise EvaluationError("The question set is empty; choose or upload one with questions.")
        if not self.strategies:
            raise EvaluationError("Choose at least one strategy to evaluate.")
        names = [s.name for s in self.strategies]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise EvaluationError(f"Two strategies are named {', '.join(twice)}; give each column its own name.")
        if self.judge_model:
            judge.check_judge(self.judge_model)

    @property
    def set_hash(self) -> str:
        return content_hash(self.questions)

    def spec(self) -> dict[str, Any]:
        return {
            "questions": [asdict(q) for q in self.questions],
            "strategies": [asdict(s) for s in self.strategies],
            "supported_threshold": self.supported_threshold,
            "judge_model": self.judge_model,
        }

    @classmethod
    def from_spec(cls, name: str, question_set: str, spec: dict[str, Any]) -> EvalRequest:
        known = {f.name for f in fields(Strategy)}
        return cls(
            name,
            question_set,
            tuple(EvalQuestion(**q) for q in spec["questions"]),
            tuple(Strategy(**{k: v for k, v in s.items() if k in known}) for s in spec["strategies"]),
            float(spec.get("supported_threshold", SUPPORTED_THRESHOLD)),
            spec.get("judge_model"),
        )


def is_embedded(strategy: Strategy) -> bool:
    """In-process llama.cpp: its answers take turns; a server's (Ollama, OpenAI-compatible) run in parallel."""
    return strategy.model.startswith("llama.cpp:")


def score(
    question: EvalQuestion,
    answer: Answer,
    embedder: Embeddings | None,
    supported_threshold: float = SUPPORTED_THRESHOLD,
) -> dict[str, Any]:
    """Every metric of one answer; similarity and support need the embedder (None without it)."""
    text = answer.text if answer.error is None else ""
    m: dict[str, Any] = {
        **metrics.text_scores(text, question.answer),
        "similarity": None,
        "supported": None,
        "rank": None,
        "retrieval_scored": bool(answer.strategy.retrieval and question.source),
    }
    if m["retrieval_scored"]:
        m["rank"] = metrics.source_rank([(h.filename, h.page) for h in answer.sources], question.source, question.page)
    if embedder is not None and text.strip():
        vectors = embedder.embed_documents([text, question.answer])
        m["similarity"] = round(metrics.cosine(vectors[0], vectors[1]), 4)
        if answer.strategy.retrieval:  # the test Compare's "Supported by" applies, sentence by sentence
            chunks = [h.text for h in answer.sources]
            share = support.supported_share(
                text, question.question, chunks, embedder.embed_documents, threshold=supported_threshold
            )
            m["supported"] = None if share is None else round(share, 4)
    return m


@dataclass(frozen=True)
class CellDone:
    """Reported after each answer is stored."""

    question_id: str
    strategy: str
    correct: bool
    seconds: float
    error: str | None


Cell = tuple[EvalQuestion, Strategy]


def pending(runtime: Runtime, run_id: int, request: EvalRequest) -> list[Cell]:
    """Cells without a usable answer, question by question (each question's columns fill together)."""
    done = {(a.question_id, a.strategy) for a in runtime.records.run_answers(run_id) if a.error is None}
    return [(q, s) for q in request.questions for s in request.strategies if (q.id, s.name) not in done]


def start_run(runtime: Runtime, request: EvalRequest) -> int:
    """Store a new run (status `running`) and return its id."""
    request.check()
    return runtime.records.create_run(
        created=now_iso(),
        name=request.name,
        question_set=request.question_set,
        set_hash=request.set_hash,
        spec=request.spec(),
    )


def load_request(runtime: Runtime, run_id: int) -> EvalRequest:
    run = runtime.records.get_run(run_id)
    if run is None:
        raise EvaluationError(f"There is no evaluation run {run_id}; it may have been deleted.")
    return EvalRequest.from_spec(run.name, run.question_set, run.spec)


def run_evaluation(
    runtime: Runtime,
    run_id: int,
    *,
    embedder: Embeddings | None = None,
    on_cell: Callable[[CellDone, int, int], None] | None = None,
    cancel: CancelFlag | None = None,
    max_parallel: int = 4,
) -> str:
    """Ask every missing cell of a stored run; returns its final status (`done`, `stopped`, `failed`).

    Args:
        on_cell: called after each stored answer with (cell, done so far, total cells).
        cancel: set it to stop between tokens; the answer in progress is dropped, so resuming asks it again.
        max_parallel: Ollama strategies answering at the same time.
    """
    request = load_request(runtime, run_id)
    total = len(request.questions) * len(request.strategies)
    cells = pending(runtime, run_id, request)
    asking = _Asking(runtime, run_id, request, embedder, on_cell, cancel, total - len(cells), total)
    runtime.records.set_run_status(run_id, "running")
    asking.run(_lanes(request, cells), max_parallel)
    if asking.failures:
        status = "failed"
    elif cancel is not None and cancel.is_set():
        status = "stopped"
    else:
        status = "done"
    runtime.records.set_run_status(run_id, status, now_iso())
    if asking.failures:
        raise EvaluationError(f"The evaluation stopped: {asking.failures[0]}") from asking.failures[0]
    return status


def _lanes(request: EvalRequest, cells: Sequence[Cell]) -> list[list[Cell]]:
    """The embedded strategies' cells in one lane (they take turns on the model anyway), each server's in its own."""
    embedded = [c for c in cells if is_embedded(c[1])]
    lanes: list[list[Cell]] = [embedded] if embedded else []
    for s in request.strategies:
        if not is_embedded(s):
            lanes.append([c for c in cells if c[1] is s])
    return lanes


@dataclass
class _Asking:
    """One run's answering: its lanes share the count of answers, the Stop and the first failure."""

    runtime: Runtime
    run_id: int
    request: EvalRequest
    embedder: Embeddings | None
    on_cell: Callable[[CellDone, int, int], None] | None
    cancel: CancelFlag | None
    done: int
    total: int
    stop: threading.Event = field(default_factory=threading.Event)
    failures: list[BaseException] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cancelled(self) -> bool:
        return self.stop.is_set() or (self.cancel is not None and self.cancel.is_set())

    def run(self, lanes: Sequence[Sequence[Cell]], max_parallel: int) -> None:
        semaphore = threading.Semaphore(max_parallel)

        def guarded(cells: Sequence[Cell]) -> None:
            with semaphore:
                self.lane(cells)

        threads = [threading.Thread(target=guarded, args=(cells,), daemon=True, name="eval-lane") for cells in lanes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def lane(self, cells: Sequence[Cell]) -> None:
        try:
            for question, strategy in cells:
                if self.cancelled():
                    return
                self.ask(question, strategy)
        except BaseException as e:  # noqa: BLE001 - one lane's crash stops the run and is reported
            log.exception("Evaluation run %s failed", self.run_id)
            self.failures.append(e)
            self.stop.set()

    def ask(self, question: EvalQuestion, strategy: Strategy) -> None:
        stop = _Either(self.stop, self.cancel)
        answer = self.runtime.run(strategy, question.question, stop=stop, save=False).answer()
        if self.cancelled() and answer.error is not None:
            return  # cut short by Stop: not stored, asked again on resume (a finished answer is kept)
        request = self.request
        m = score(question, answer, self.embedder, request.supported_threshold)
        if request.judge_model:
            text = answer.text if answer.error is None else ""
            verdict = judge.judge(self.runtime.models, request.judge_model, question.question, question.answer, text)
            m["judge"], m["judge_reply"] = verdict
        record = answer_record(answer) | {"run_id": self.run_id, "question_id": question.id, "metrics": m}
        self.runtime.records.add_answer(record)
        with self._lock:
            self.done += 1
            n = self.done
        if self.on_cell is not None:
            cell = CellDone(question.id, strategy.name, bool(m["correct"]), answer.total_s, answer.error)
            self.on_cell(cell, n, self.total)


@dataclass
class _Either:
    """Set when either flag is."""

    a: threading.Event
    b: CancelFlag | None

    def is_set(self) -> bool:
        return self.a.is_set() or (self.b is not None and self.b.is_set())
