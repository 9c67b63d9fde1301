"""An evaluation run (new or resumed) in the background (`core.evaluation.runner.run_evaluation`), on the board."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Self

from langchain_core.embeddings import Embeddings

from core.evaluation.runner import CellDone, load_request, pending, run_evaluation
from core.lab.board import BackgroundJob, JobBoard, JobState
from core.progress import CancelFlag, Progress
from core.strategies import Runtime


@dataclass(kw_only=True)
class EvalView(JobState):
    """A consistent copy of an evaluation job's state for the page to draw."""

    run_id: int
    name: str
    status: str = "running"
    done: int
    total: int
    asked: int = 0

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
        done = total - len(pending(self.runtime, self.run_id, request))
        self._view = EvalView(run_id=self.run_id, name=request.name, done=done, total=total)
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
