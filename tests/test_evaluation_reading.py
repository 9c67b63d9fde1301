"""Where a retrieval strategy's answers are lost, and its reading efficiency, from what each cell stored."""

from __future__ import annotations

from core.evaluation.questions import EvalQuestion
from core.evaluation.reading import NOT_IN_EXCERPT, NOT_READ, NOT_RETRIEVED, failure_kind, reading
from core.evaluation.report import Cell, RunData
from core.evaluation.runner import EvalRequest
from core.strategies import Strategy

CHUNK = "Install the libpaper1 package. The default paper size is kept in /etc/papersize."
OTHER = "The apt-get upgrade command installs newer versions of the packages."


def cell(qid: str, answer: str, correct: bool, sources: list[str], prompt: str, strategy: str = "RAG") -> Cell:
    return Cell(qid, strategy, answer, None, 0.1, 0.2, 10, 5, {"correct": correct},
                [{"text": t} for t in sources], prompt)  # fmt: skip


def test_each_wrong_answer_says_where_it_was_lost_and_reading_efficiency_counts_what_reached_the_model() -> None:
    qs = (
        EvalQuestion("q1", "Where is the paper size kept?", "/etc/papersize"),
        EvalQuestion("q2", "Which package sets the paper size?", "libpaper1"),
        EvalQuestion("q3", "What keeps a package from upgrading?", "apt-mark hold"),
        EvalQuestion("q4", "Where is the paper size kept?", "/etc/papersize"),
    )
    cells = {
        # Retrieved, but the excerpt kept the first sentence only: the answer never reached the model.
        ("q1", "RAG"): cell("q1", "In libpaper1.", False, [CHUNK], "Text: Install the libpaper1 package. Q: …"),
        # In the excerpt and answered right.
        ("q2", "RAG"): cell("q2", "libpaper1", True, [CHUNK], f"Text: {CHUNK}"),
        ("q3", "RAG"): cell("q3", "apt-get", False, [OTHER], f"Text: {OTHER}"),  # not retrieved
        ("q4", "RAG"): cell("q4", "In the package.", False, [CHUNK], f"Text: {CHUNK}"),  # read and missed
        ("q1", "PE"): cell("q1", "No idea.", False, [], "Q: Where is the paper size kept?", "PE"),
    }
    assert [failure_kind(cells[(q.id, "RAG")], q.answer) for q in qs] == [NOT_IN_EXCERPT, None, NOT_RETRIEVED, NOT_READ]
    assert failure_kind(cells[("q1", "PE")], qs[0].answer) is None  # nothing retrieved: nothing to place
    request = EvalRequest("run", "set", qs, (Strategy("PE", "m", "t"), Strategy("RAG", "m", "t", retrieval=True)))
    run = RunData(1, "run", "now", "done", "set", request, cells)
    [rag] = reading(run)  # PE retrieved nothing: no reading figures for it
    assert (rag.strategy, rag.answered, rag.retrieved, rag.in_excerpt, rag.read) == ("RAG", 4, 3, 2, 1)
    assert rag.efficiency == 0.5 and "reading efficiency 50%" in rag.describe()
