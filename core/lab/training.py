"""A fine-tuning run in the background (`core.finetune.pipeline.run_training`), on the process's board."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core import adapters
from core.errors import TrainingError
from core.finetune.pipeline import Phase, TrainRequest, run_training
from core.finetune.trainer import Step
from core.lab.board import BackgroundJob, JobBoard, JobState


@dataclass(kw_only=True)
class JobView(JobState):
    """A consistent copy of a training run's state for the page to draw."""

    request: TrainRequest
    phase: Phase = "queued"
    steps: list[Step] = field(default_factory=list)
    adapter: str | None = None


@dataclass
class TrainingJob(BackgroundJob[JobView]):
    """A run in a background thread; `view()` is safe to call from any session.

    It belongs to the session that started it (`owner`, an opaque session id): every session
    sees it, only the owner stops it, or another session that explicitly confirms (`force`).
    """

    CRASHED = "Training failed"

    data_dir: Path
    request: TrainRequest
    owner: str = ""

    def __post_init__(self) -> None:
        self._view = JobView(request=self.request)

    def _thread_name(self) -> str:
        return f"train-{self.request.name}"

    def _snapshot(self, view: JobView) -> JobView:
        return replace(view, steps=list(view.steps))

    def is_owner(self, session: str) -> bool:
        return session == self.owner

    def cancel(self, by: str = "", *, force: bool = False) -> None:
        """Stop after the current step.

        Raises:
            TrainingError: `by` is not the session that started the run and `force` is off.
        """
        if not force and not self.is_owner(by):
            raise TrainingError(
                f"{self.request.name} was started in another session; confirm that you want to stop it anyway."
            )
        self.cancel_flag.set()
        self._update(message="Stopping after the current step…")

    def _work(self) -> dict[str, Any]:
        adapter = run_training(
            self.data_dir,
            self.request,
            on_phase=lambda p, m: self._update(phase=p, message=m),
            on_step=lambda step: self._append(lambda v: v.steps, step),
            cancel=self.cancel_flag,
        )
        # Whether Ollama has it too is on the model's card, read from its manifest.
        return {"phase": "done", "message": f"{adapter.name} is ready.", "adapter": adapter.name}


_cleaned: set[Path] = set()
_cleaned_lock = threading.Lock()


def _clean_once(data_dir: Path) -> None:
    """At the first look at a DATA_DIR in this process: remove staging folders that killed processes left."""
    with _cleaned_lock:
        if data_dir not in _cleaned:
            _cleaned.add(data_dir)
            adapters.clean_leftovers(data_dir)


def start_training(board: JobBoard, data_dir: Path, request: TrainRequest, owner: str = "") -> TrainingJob:
    """Start a training run owned by the session `owner` on the process's board.

    Raises:
        BusyError: a heavy job (training, registration, an evaluation, rounds) is still running.
    """
    _clean_once(data_dir)
    return board.start("training", TrainingJob(data_dir, request, owner), label=request.name, data_dir=data_dir)


def latest_training(board: JobBoard, data_dir: Path) -> TrainingJob | None:
    """The newest training run for this DATA_DIR, running or not."""
    _clean_once(data_dir)
    job: TrainingJob | None = board.latest("training", data_dir)
    return job
