"""The evaluation runner: every question of a set through every chosen strategy, in the background.

`run_evaluation` is a plain function (the bench and scripts call it without Streamlit);
`EvalJob` runs it in a thread and keeps a snapshot the page polls. Each finished answer is
stored at once with its metrics, so a stopped or crashed run resumes by asking only the cells
that have no answer yet (or whose answer was an error).

Embedded (llama.cpp) strategies share one worker, as they would take turns on the model lock
anyway; each Ollama strategy gets its own worker and runs in parallel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Self

from langchain_core.embeddings import Embeddings

from core.background import BackgroundJob, JobBoard
from core.errors import EvaluationError
from core.evaluation import judge, metrics, support
from core.evaluation.questions import EvalQuestion, content_hash
from core.files import now_iso
from core.progress import CancelFlag, Progress
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


def _pending(runtime: Runtime, run_id: int, request: EvalRequest) -> list[tuple[EvalQuestion, Strategy]]:
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
    pending = _pending(runtime, run_id, request)
    done = [total - len(pending)]
    lock = threading.Lock()
    stop = threading.Event()
    failures: list[BaseException] = []
    runtime.records.set_run_status(run_id, "running")

    def cancelled() -> bool:
        return stop.is_set() or (cancel is not None and cancel.is_set())

    def ask(question: EvalQuestion, strategy: Strategy) -> None:
        answer: Answer | None = None
        for item in runtime.run(strategy, question.question, stop=_Either(stop, cancel), save=False):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        if cancelled() and answer.error is not None:
            return  # cut short by Stop: not stored, asked again on resume (a finished answer is kept)
        m = score(question, answer, embedder, request.supported_threshold)
        if request.judge_model:
            text = answer.text if answer.error is None else ""
            verdict = judge.judge(runtime.models, request.judge_model, question.question, question.answer, text)
            m["judge"], m["judge_reply"] = verdict
        runtime.records.add_answer(answer_record(answer) | {"run_id": run_id, "question_id": question.id, "metrics": m})
        with lock:
            done[0] += 1
            n = done[0]
        if on_cell is not None:
            on_cell(CellDone(question.id, strategy.name, bool(m["correct"]), answer.total_s, answer.error), n, total)

    def lane(cells: Sequence[tuple[EvalQuestion, Strategy]]) -> None:
        try:
            for question, strategy in cells:
                if cancelled():
                    return
                ask(question, strategy)
        except BaseException as e:  # noqa: BLE001 - one lane's crash stops the run and is reported
            log.exception("Evaluation run %s failed", run_id)
            failures.append(e)
            stop.set()

    embedded = [c for c in pending if is_embedded(c[1])]
    lanes: list[list[tuple[EvalQuestion, Strategy]]] = [embedded] if embedded else []
    for s in request.strategies:
        if not is_embedded(s):
            lanes.append([c for c in pending if c[1] is s])
    semaphore = threading.Semaphore(max_parallel)

    def guarded(cells: Sequence[tuple[EvalQuestion, Strategy]]) -> None:
        with semaphore:
            lane(cells)

    threads = [threading.Thread(target=guarded, args=(cells,), daemon=True, name="eval-lane") for cells in lanes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        status = "failed"
    elif cancel is not None and cancel.is_set():
        status = "stopped"
    else:
        status = "done"
    runtime.records.set_run_status(run_id, status, now_iso())
    if failures:
        raise EvaluationError(f"The evaluation stopped: {failures[0]}") from failures[0]
    return status


@dataclass
class _Either:
    """Set when either flag is."""

    a: threading.Event
    b: CancelFlag | None

    def is_set(self) -> bool:
        return self.a.is_set() or (self.b is not None and self.b.is_set())


@dataclass
class EvalView:
    """A consistent copy of a job's state for the page to draw."""

    run_id: int
    name: str
    status: str
    done: int
    total: int
    asked: int
    started: float
    finished: float | None
    message: str

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def eta_s(self) -> float | None:
        """Remaining seconds at this run's own pace so far (None until one answer is in)."""
        if not self.asked or not self.running:
            return None
        return self.elapsed_s / self.asked * (self.total - self.done)


@dataclass
class EvalJob(BackgroundJob[EvalView]):
    """One run (new or resumed) in a background thread; `view()` is safe from any session.

    A Stop ends `run_evaluation` with status "stopped" (resumable) rather than raising.
    """

    ENDED_FIELD = "status"
    CRASHED = "The evaluation failed"

    runtime: Runtime
    run_id: int
    embedder: Embeddings | None = None
    # Work before the first answer (a sweep's scratch knowledge bases), with progress and the Stop flag.
    prepare: Callable[[Progress, CancelFlag], None] | None = None

    def start(self) -> Self:
        request = load_request(self.runtime, self.run_id)
        total = len(request.questions) * len(request.strategies)
        done = total - len(_pending(self.runtime, self.run_id, request))
        self._view = EvalView(self.run_id, request.name, "running", done, total, 0, time.time(), None, "Starting…")
        return super().start()

    def _thread_name(self) -> str:
        return f"eval-{self.run_id}"

    def cancel(self) -> None:
        self.cancel_flag.set()
        self._update(message="Stopping after the answers in progress…")

    def _cell(self, cell: CellDone, done: int, total: int) -> None:
        verdict = "error" if cell.error else ("correct" if cell.correct else "wrong")
        message = f"{cell.strategy} · {cell.question_id}: {verdict} ({cell.seconds:.1f} s)"
        self._change(lambda v: replace(v, done=done, asked=v.asked + 1, message=message))

    def _preparing(self, done: int, total: int, message: str) -> None:
        self._update(message=message)

    def _work(self) -> dict[str, Any]:
        if self.prepare is not None:
            self.prepare(self._preparing, self.cancel_flag)
        status = run_evaluation(self.runtime, self.run_id, embedder=self.embedder, on_cell=self._cell,
                                cancel=self.cancel_flag)  # fmt: skip
        message = {"done": "Finished.", "stopped": "Stopped; resume to ask only the missing answers."}[status]
        return {"status": status, "message": message}


def start_evaluation(
    board: JobBoard,
    runtime: Runtime,
    run_id: int,
    embedder: Embeddings | None = None,
    prepare: Callable[[Progress, CancelFlag], None] | None = None,
) -> EvalJob:
    """Run (or resume) evaluation `run_id` in the background on the process's board.

    Raises:
        BusyError: a heavy job (training, an evaluation, rounds) is still running.
    """
    label = f"Evaluation {load_request(runtime, run_id).name!r}"
    return board.start("evaluation", EvalJob(runtime, run_id, embedder, prepare), label=label)


def latest_evaluation(board: JobBoard) -> EvalJob | None:
    """The newest evaluation job of this process, running or not."""
    job: EvalJob | None = board.latest("evaluation")
    return job


def running_ids(board: JobBoard) -> set[int]:
    """The runs an evaluation job is answering now."""
    return {j.run_id for j in board.running_of("evaluation") if isinstance(j, EvalJob)}
