"""The process's job board: one heavy job at a time, whatever its kind; and how a background job ends."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

import pytest

from core.errors import BusyError, TrainingCancelled, TrainingError
from core.lab.board import BackgroundJob, JobBoard


@dataclass(frozen=True)
class View:
    phase: str
    message: str
    finished: float | None = None

    @property
    def running(self) -> bool:
        return self.finished is None


@dataclass(kw_only=True)
class Waiting(BackgroundJob[View]):
    """A job that holds the board until it is released."""

    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._view = View("queued", "Starting…")

    def _thread_name(self) -> str:
        return "waiting"

    def _work(self) -> dict[str, str]:
        self.release.wait(30)
        return {"phase": "done", "message": "Done."}


def test_a_job_of_any_kind_keeps_every_other_kind_from_starting() -> None:
    board = JobBoard()
    evaluation, training = Waiting(), Waiting()
    assert board.busy() is None and board.running() is None
    board.start("evaluation", evaluation, label="Evaluation 'mine'")
    with pytest.raises(BusyError, match="Evaluation 'mine' is still running"):
        board.start("training", training, label="facts-1")  # the Fine-tune page's Train, while Evaluate runs
    assert board.latest("training") is None and board.running() is evaluation
    evaluation.release.set()
    evaluation.join(10)
    assert board.busy() is None
    board.start("training", training, label="facts-1", data_dir="/data")
    assert board.busy() == "facts-1 is still training; wait for it or stop it before starting another."
    with pytest.raises(BusyError):
        board.start("rounds", Waiting(), label="loop")  # the staged loop, while a training run goes
    assert board.latest("training", "/data") is training and board.latest("training", "/other") is None
    assert board.latest("evaluation") is evaluation and board.running_of("evaluation") == []
    training.release.set()
    training.join(10)
    assert not training.view().running and board.running() is None


@dataclass(frozen=True)
class CountView:
    phase: str
    message: str
    seen: list[int]
    finished: float | None = None


@dataclass
class Counting(BackgroundJob[CountView]):
    """Appends 0..n-1 to its view, then ends as told: done, an error of ours, Stop, or a crash."""

    n: int
    end: str = "done"

    def __post_init__(self) -> None:
        self._view = CountView("queued", "", [])

    def _thread_name(self) -> str:
        return "counting"

    def _snapshot(self, view: CountView) -> CountView:
        return replace(view, seen=list(view.seen))

    def _work(self) -> dict[str, object]:
        for i in range(self.n):
            self._append(lambda v: v.seen, i)
        if self.end == "ours":
            raise TrainingError("Free some disk space, then try again.")
        if self.end == "stop":
            raise TrainingCancelled()
        if self.end == "crash":
            raise ZeroDivisionError("division by zero")
        return {"phase": "done", "message": "Counted."}

    def _outcome(self, outcome: str, message: str) -> dict[str, object]:
        return {"phase": outcome, "message": message}


@pytest.mark.parametrize(
    ("end", "phase", "message"),
    [
        ("done", "done", "Counted."),
        ("ours", "failed", "Free some disk space, then try again."),
        ("stop", "cancelled", "Training was stopped; no adapter was saved."),
        ("crash", "crashed", "division by zero"),
    ],
)
def test_however_a_background_job_ends_its_view_says_so_and_is_finished(end: str, phase: str, message: str) -> None:
    job = Counting(n=3, end=end)
    assert job.view().phase == "queued" and job.view().finished is None
    job.start().join(10)
    view = job.view()
    assert (view.phase, view.message, view.seen) == (phase, message, [0, 1, 2])
    assert view.finished is not None
    view.seen.append(99)  # a page's copy: changing it changes nothing in the job
    assert job.view().seen == [0, 1, 2]
