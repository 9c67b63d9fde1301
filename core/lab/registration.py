"""A fine-tuned model registered with Ollama in the background (`core.finetune.ollama_register`), on the board."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import adapters
from core.finetune import ollama_register
from core.lab.board import BackgroundJob, JobBoard, JobState


@dataclass(kw_only=True)
class RegistrationView(JobState):
    """Where an Ollama registration stands: what it is doing, the share done, and how it ended."""

    fraction: float = 0.0
    model: str | None = None  # the Ollama model name once registered
    error: str | None = None

    @property
    def done(self) -> bool:
        return not self.running


@dataclass
class RegistrationJob(BackgroundJob[RegistrationView]):
    """`ollama_register.register` in a background thread, so a page polls its progress instead of blocking."""

    CRASHED = "Registration failed"

    adapter: adapters.Adapter  # with the registration in its manifest once registered
    base_path: Path
    chat_template: str
    host: str

    def __post_init__(self) -> None:
        self._view = RegistrationView(message=f"Registering {self.adapter.name} with Ollama at {self.host}…")

    def _thread_name(self) -> str:
        return f"ollama-{self.adapter.name}"

    def _outcome(self, outcome: str, message: str) -> dict[str, Any]:
        shown = f"{self.CRASHED}: {message}" if outcome == "crashed" else message
        return {"message": shown, "error": message}

    def _work(self) -> dict[str, Any]:
        result = ollama_register.register(
            self.adapter,
            self.base_path,
            self.chat_template,
            self.host,
            on_progress=lambda message, share: self._update(message=message, fraction=share),
        )
        self.adapter = result.adapter
        sent = f" (uploaded: {', '.join(result.uploaded)})" if result.uploaded else " (Ollama had both files)"
        return {"message": f"Registered as {result.model}{sent}.", "fraction": 1.0, "model": result.model}


def start_registration(
    board: JobBoard,
    adapter: adapters.Adapter,
    base_path: Path,
    chat_template: str,
    host: str,
    *,
    data_dir: Path | None = None,
) -> RegistrationJob:
    """Register `adapter` (on the base GGUF at `base_path`) with the Ollama server at `host`, in the background.

    Raises:
        BusyError: a heavy job (training, registration, an evaluation, rounds) is still running.
    """
    job = RegistrationJob(adapter, base_path, chat_template, host)
    return board.start("registration", job, label=adapter.name, data_dir=data_dir)


def latest_registration(board: JobBoard, data_dir: Path) -> RegistrationJob | None:
    """The newest registration for this DATA_DIR, running or not."""
    job: RegistrationJob | None = board.latest("registration", data_dir)
    return job
