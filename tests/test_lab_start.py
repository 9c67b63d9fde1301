"""The training-mode table: every mode the Fine-tune page offers starts something, on the board."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import BusyError, TrainingError
from core.finetune.datasets import Pair
from core.finetune.modes import MODES, JointSettings, Mode
from core.finetune.pipeline import TrainRequest
from core.lab.board import JobBoard
from core.lab.start import STARTS, preparing, start_mode
from core.strategies import Runtime
from core.template_library import TemplateLibrary
from tests.test_lab_board import Waiting

REQUEST = TrainRequest("facts-1", "facts", (Pair("q?", "a."), Pair("r?", "b.")), Path("base.gguf"), "SmolLM2")


def test_every_mode_has_a_start_and_only_joint_prepares_before_it() -> None:
    assert list(STARTS) == list(MODES)
    assert preparing("joint", REQUEST) == "Retrieving the chunks for each of the 2 questions…"
    assert [m for m in MODES if preparing(m, REQUEST)] == ["joint"]


@pytest.mark.parametrize("mode", ["ft_then_rag", "staged", "iterative"])
def test_no_mode_starts_while_another_job_runs(mode: Mode, tmp_path: Path) -> None:
    board, evaluation = JobBoard(), Waiting()
    board.start("evaluation", evaluation, label="Evaluation 'mine'")
    runtime = Runtime(None, TemplateLibrary(tmp_path / "templates"), None, None)  # type: ignore[arg-type]
    with pytest.raises(BusyError, match="Evaluation 'mine' is still running"):
        start_mode(mode, board, runtime, tmp_path, REQUEST, JointSettings("kb"))
    evaluation.release.set()
    evaluation.join(10)
    assert board.latest("training") is None and board.latest("rounds") is None


def test_joint_without_a_knowledge_base_is_refused_before_anything_starts(tmp_path: Path) -> None:
    board = JobBoard()
    runtime = Runtime(None, TemplateLibrary(tmp_path / "templates"), None, None)  # type: ignore[arg-type]
    with pytest.raises(TrainingError, match="needs a knowledge base"):
        start_mode("joint", board, runtime, tmp_path, REQUEST, JointSettings("kb"))
    assert board.running() is None and board.latest("training") is None
