"""Which training mode runs what: a plain or joint training run, or evaluate/train rounds, started on the board."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from core.errors import TrainingError
from core.evaluation.questions import EvalQuestion, question_id
from core.finetune.modes import JointSettings, Mode, joint_request, mode_record
from core.finetune.pipeline import TrainRequest
from core.lab.board import BackgroundJob, JobBoard
from core.lab.rounds import MAX_ROUNDS, LoopJob, LoopRequest, start_loop
from core.lab.training import TrainingJob, start_training
from core.strategies import Runtime


@dataclass(frozen=True)
class Launch:
    """What starting a mode needs: the process's board and runtime, the request, and the mode's own settings."""

    board: JobBoard
    runtime: Runtime
    data_dir: Path
    request: TrainRequest
    joint: JointSettings | None
    rounds: int
    embedder: Callable[[], Embeddings | None]
    owner: str


def _plain(launch: Launch) -> TrainingJob:
    request = replace(launch.request, mode=mode_record("ft_then_rag"))
    return start_training(launch.board, launch.data_dir, request, launch.owner)


def _joint(launch: Launch) -> TrainingJob:
    if launch.runtime.store is None:
        raise TrainingError("Joint training needs a knowledge base, and Qdrant is not available.")
    assert launch.joint is not None
    request = joint_request(launch.runtime.store, launch.runtime.templates, launch.request, launch.joint)
    return start_training(launch.board, launch.data_dir, request, launch.owner)


def _rounds(max_rounds: int | None) -> Callable[[Launch], LoopJob]:
    """Staged (one round) or iterative (`None`: the launch's round limit) rounds on the request's pairs."""

    def start(launch: Launch) -> LoopJob:
        request, joint = launch.request, launch.joint
        assert joint is not None
        questions = tuple(EvalQuestion(question_id(p.question), p.question, p.answer) for p in request.pairs)
        loop = LoopRequest(request.name, questions, request.dataset, joint, request.base_path, request.base_name,
                           request.settings, max_rounds=max_rounds or launch.rounds, ollama_host=request.ollama_host,
                           pairs=request.pairs, system=request.system)  # fmt: skip
        job = LoopJob(launch.data_dir, launch.runtime, loop, launch.embedder(), owner=launch.owner)
        return start_loop(launch.board, job)

    return start


STARTS: dict[Mode, Callable[[Launch], BackgroundJob[Any]]] = {
    "ft_then_rag": _plain,
    "joint": _joint,
    "staged": _rounds(1),
    "iterative": _rounds(None),
}


def preparing(mode: Mode, request: TrainRequest) -> str | None:
    """What the page shows while a mode prepares its data before the job starts (a few seconds of retrieval)."""
    return f"Retrieving the chunks for each of the {len(request.pairs)} questions…" if mode == "joint" else None


def start_mode(
    mode: Mode,
    board: JobBoard,
    runtime: Runtime,
    data_dir: Path,
    request: TrainRequest,
    joint: JointSettings | None = None,
    *,
    rounds: int = MAX_ROUNDS,
    embedder: Callable[[], Embeddings | None] = lambda: None,
    owner: str = "",
) -> BackgroundJob[Any]:
    """Start `mode` in the background; joint examples are rendered first. Without joint settings it trains plainly.

    Raises:
        AppError: a heavy job runs already, or the settings or the knowledge base are unusable.
    """
    launch = Launch(board, runtime, data_dir, request, joint, rounds, embedder, owner)
    return STARTS["ft_then_rag" if joint is None else mode](launch)
