"""The runner with the real embedded SmolLM2, MiniLM and the sample knowledge base in Qdrant local mode."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from core.config import Settings
from core.embeddings import EmbeddingModel
from core.engine import EmbeddedEngine
from core.evaluation import report
from core.evaluation.questions import sample_set
from core.evaluation.runner import CellDone, EvalRequest, run_evaluation, start_run
from core.ingest import ingest
from core.lab.board import JobBoard
from core.lab.evaluation import start_evaluation
from core.models import ModelCatalog
from core.records import Records
from core.samples import sample_uploads
from core.store import Store
from core.strategies import Answer, Reply, Runtime, Strategy, presets
from core.template_library import TemplateLibrary

pytestmark = pytest.mark.slow
# Questions whose answer RAG finds at top-2 and the base model cannot know (bench/evaluate.py).
IDS = ("q03", "q04", "q07", "q11")


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory, minilm: EmbeddingModel) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("sample")
    store = Store.open(Settings.from_env(data_dir=root, ollama_host=None), minilm)
    store.create_kb("brackenridge", chunk_size=800, chunk_overlap=120)
    ingest(store, "brackenridge", sample_uploads())
    yield store
    store.close()


class CountingRuntime(Runtime):
    """A real Runtime that remembers what it was asked."""

    asked: list[tuple[str, str]]
    stop_at_first_token: threading.Event | None = None

    def run(self, strategy: Strategy, question: str, **kw):  # type: ignore[no-untyped-def, override]
        self.asked.append((strategy.name, question))
        reply = super().run(strategy, question, **kw)
        return reply if self.stop_at_first_token is None else StopAtFirstPiece(reply, self.stop_at_first_token)


class StopAtFirstPiece(Reply):
    """A reply that sets `flag` at each piece of its text, as if the user pressed Stop while the answer streams."""

    def __init__(self, reply: Reply, flag: threading.Event) -> None:
        def pieces() -> Iterator[str]:
            for piece in reply:
                flag.set()
                yield piece

        self.reply, self.pieces = reply, pieces()

    def __iter__(self) -> Iterator[str]:
        return self.pieces

    def answer(self) -> Answer:
        for _ in self.pieces:
            pass
        return self.reply.answer()


@pytest.fixture
def runtime(sample_store: Store, tmp_path: Path) -> CountingRuntime:
    settings = Settings.from_env(data_dir=tmp_path, ollama_host=None)
    rt = CountingRuntime(sample_store, TemplateLibrary(tmp_path / "t"), ModelCatalog(settings, EmbeddedEngine(), None),
                         Records(tmp_path / "records.sqlite"))  # fmt: skip
    rt.asked = []
    return rt


def strategies(runtime: Runtime, max_tokens: int = 64) -> tuple[Strategy, Strategy]:
    p = presets(runtime.models.available(), "brackenridge")
    return replace(p["PE"].strategy, max_tokens=max_tokens), replace(p["RAG"].strategy, max_tokens=max_tokens)


def test_rag_beats_pe_on_the_sample_questions_and_the_run_exports(runtime: Runtime, minilm: EmbeddingModel) -> None:
    questions = tuple(q for q in sample_set().questions if q.id in IDS)
    run_id = start_run(runtime, EvalRequest("t", "sample", questions, strategies(runtime)))
    assert run_evaluation(runtime, run_id, embedder=minilm.embeddings) == "done"
    run = report.load_run(runtime.records, run_id)
    pe, rag = report.summarize(run)
    assert (pe.answered, rag.answered, pe.errors, rag.errors) == (4, 4, 0, 0)
    assert pe.hit_at_k is None and rag.hit_at_k is not None and rag.hit_at_k >= 0.75
    assert rag.correct is not None and pe.correct is not None and rag.correct > pe.correct
    assert rag.supported is not None and rag.similarity is not None and pe.supported is None
    assert runtime.records.answers() == []  # evaluation answers stay out of Compare's history

    back = report.from_json(report.to_json(run))
    assert report.summarize(back) == report.summarize(run)
    assert back.cells == run.cells
    rows = list(csv.DictReader(io.StringIO(report.to_csv(run))))
    assert len(rows) == 8 and rows[0]["question_id"] == questions[0].id and rows[1]["strategy"] == "RAG"
    assert {r["correct"] for r in rows} <= {"True", "False"}


def test_stop_then_resume_asks_only_the_missing_cells(runtime: CountingRuntime) -> None:
    questions = sample_set().questions[:3]
    pe = replace(strategies(runtime, max_tokens=16)[0], name="PE short")
    run_id = start_run(runtime, EvalRequest("t", "sample", questions, (pe,)))
    stop = threading.Event()

    def after_first(cell: CellDone, done: int, total: int) -> None:
        stop.set()

    assert run_evaluation(runtime, run_id, on_cell=after_first, cancel=stop) == "stopped"
    assert runtime.records.done_cells(run_id) == {(questions[0].id, "PE short")}
    first = runtime.records.run_answers(run_id)[0]
    runtime.asked.clear()
    assert run_evaluation(runtime, run_id) == "done"
    assert runtime.asked == [("PE short", q.question) for q in questions[1:]]
    assert runtime.records.run_answers(run_id)[0] == first
    assert runtime.records.get_run(run_id).status == "done"  # type: ignore[union-attr]
    runtime.asked.clear()
    assert run_evaluation(runtime, run_id) == "done" and runtime.asked == []


def test_a_stopped_answer_is_not_stored_and_the_job_reports_progress(runtime: CountingRuntime) -> None:
    questions = sample_set().questions[:2]
    pe = strategies(runtime, max_tokens=16)[0]
    jobs = JobBoard()
    job = start_evaluation(jobs, runtime, start_run(runtime, EvalRequest("bg", "sample", questions, (pe,))))
    with pytest.raises(Exception, match="'bg' is still running"):
        start_evaluation(jobs, runtime, start_run(runtime, EvalRequest("other", "sample", questions, (pe,))))
    job.join(120)
    view = job.view()
    assert (view.status, view.done, view.total, view.asked, view.running) == ("done", 2, 2, 2, False)
    stopped = start_run(runtime, EvalRequest("cut", "sample", questions, (pe,)))
    runtime.stop_at_first_token = flag = threading.Event()
    runtime.asked.clear()
    assert run_evaluation(runtime, stopped, cancel=flag) == "stopped"
    assert len(runtime.asked) == 1 and runtime.records.run_answers(stopped) == []  # the cut answer is not kept
