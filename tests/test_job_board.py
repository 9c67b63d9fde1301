"""The process's job board: one heavy job at a time, whatever its kind (training, an evaluation, rounds)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from core.background import BackgroundJob, JobBoard
from core.errors import BusyError


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
