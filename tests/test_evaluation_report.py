"""Reports from runs: the matrix filters, failures, run-to-run changes, exports; Ollama lanes in parallel."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from core.config import Settings
from core.engine import EmbeddedEngine
from core.errors import EvaluationError
from core.evaluation import report
from core.evaluation.judge import JUDGE_SYSTEM, parse_verdict
from core.evaluation.questions import EvalQuestion
from core.evaluation.report import Cell, RunData
from core.evaluation.runner import EvalRequest, run_evaluation, start_run
from core.models import ModelCatalog
from core.records import Records
from core.servers.ollama import OllamaServer
from core.strategies import Runtime, Strategy
from core.template_library import TemplateLibrary

QUESTIONS = tuple(EvalQuestion(f"q{i}", f"Question {i}?", f"answer {i}", "doc.md", 1) for i in range(3))
A, B = Strategy("A", "m", "t"), Strategy("B", "m", "t", retrieval=True, kb="kb", top_k=2)


def cell(q: int, s: str, correct: bool, f1: float = 0.5, rank: int | None = None) -> Cell:
    metrics = {"correct": correct, "f1": f1, "exact": False, "contains": correct, "rank": rank,
               "retrieval_scored": s == "B"}  # fmt: skip
    return Cell(f"q{q}", s, f"text {q}", None, 0.1, 1.0 + q, 10, 5, metrics)


def run(verdicts: dict[tuple[int, str], bool], run_id: int = 1) -> RunData:
    request = EvalRequest("r", "set", QUESTIONS, (A, B))
    cells = {(f"q{q}", s): cell(q, s, ok, rank=1 if s == "B" else None) for (q, s), ok in verdicts.items()}
    return RunData(run_id, "r", "now", "done", "set", request, cells)


FIRST = run({(0, "A"): True, (0, "B"): True, (1, "A"): False, (1, "B"): True, (2, "A"): False, (2, "B"): False})


def test_matrix_filters_failures_and_disagreements() -> None:
    ids = lambda rows: [r["question"].id for r in rows]  # noqa: E731
    assert ids(report.matrix(FIRST)) == ["q0", "q1", "q2"]
    assert ids(report.matrix(FIRST, failures_only=True)) == ["q1", "q2"]
    assert ids(report.matrix(FIRST, disagree_only=True)) == ["q1"]
    assert report.matrix(FIRST)[1]["cells"] == {"A": (False, 0.5), "B": (True, 0.5)}
    assert [q.id for q in report.failures(FIRST, "A")] == ["q1", "q2"]


def test_summaries_count_errors_as_wrong_and_measure_retrieval_only_where_on() -> None:
    broken = run({(0, "A"): True, (1, "A"): True, (2, "A"): True, (0, "B"): True})
    broken.cells[("q1", "A")] = Cell("q1", "A", "", "Ollama is down", None, None, None, None, {"correct": False})
    a, b = report.summarize(broken)
    assert (a.answered, a.errors, a.correct) == (3, 1, pytest.approx(2 / 3))
    assert a.hit_at_k is None and (b.answered, b.hit_at_1, b.mrr) == (1, 1.0, 1.0)
    assert a.total_p50 == pytest.approx(2.0)  # 1.0 and 3.0; the failed answer has no time


def test_compare_runs_gives_the_change_per_strategy_and_question() -> None:
    later = run({(0, "A"): True, (0, "B"): True, (1, "A"): True, (1, "B"): True, (2, "A"): False, (2, "B"): True}, 2)
    changes, flips = report.compare_runs(later, FIRST)
    assert [(c.strategy, c.before, c.after) for c in changes] == [
        ("A", pytest.approx(1 / 3), pytest.approx(2 / 3)), ("B", pytest.approx(2 / 3), 1.0)
    ]  # fmt: skip
    assert [(f["question"], f["strategy"], f["before"], f["after"]) for f in flips] == [
        ("Question 1?", "A", False, True), ("Question 2?", "B", False, True)
    ]  # fmt: skip
    other = RunData(3, "r", "now", "done", "set", EvalRequest("r", "set", QUESTIONS[:2], (A, B)), {})
    with pytest.raises(EvaluationError, match="different versions"):
        report.compare_runs(other, FIRST)


def test_json_round_trip_and_refusals() -> None:
    back = report.from_json(report.to_json(FIRST))
    assert back.cells == FIRST.cells and back.request == FIRST.request
    assert report.matrix(back) == report.matrix(FIRST)
    for bad, message in [("{", "cannot be read"), ("[]", "not an evaluation export"),
                         (json.dumps({"format": "ragtune-evaluation/1"}), "cannot be read")]:  # fmt: skip
        with pytest.raises(EvaluationError, match=message):
            report.from_json(bad)
    assert report.to_csv(FIRST).splitlines()[0] == ",".join(report.CSV_COLUMNS)
    assert len(report.to_csv(FIRST).splitlines()) == 7


def test_duplicate_strategy_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="Two strategies are named A"):
        EvalRequest("r", "set", QUESTIONS, (A, A)).check()
    with pytest.raises(EvaluationError, match="empty"):
        EvalRequest("r", "set", (), (A,)).check()


def test_ollama_strategies_answer_in_parallel(tmp_path: Path) -> None:
    """Each Ollama strategy has its own lane: requests of two strategies overlap."""
    spans: dict[str, list[tuple[float, float]]] = {}
    lock = threading.Lock()

    def slow_chat(request: Request) -> Response:
        model = json.loads(request.data)["model"]
        start = time.monotonic()
        time.sleep(0.3)
        with lock:
            spans.setdefault(model, []).append((start, time.monotonic()))
        body = "".join(json.dumps(o) + "\n" for o in (
            {"model": model, "message": {"role": "assistant", "content": "answer 0"}, "done": False},
            {"model": model, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
             "prompt_eval_count": 3, "eval_count": 2},
        ))  # fmt: skip
        return Response(body, content_type="application/x-ndjson")

    server = HTTPServer(threaded=True)
    server.expect_request("/api/show", method="POST").respond_with_json({"model_info": {}})
    server.expect_request("/api/chat", method="POST").respond_with_handler(slow_chat)
    server.start()
    try:
        host = server.url_for("/").rstrip("/")
        catalog = ModelCatalog(Settings.from_env(ollama_host=host), EmbeddedEngine(), OllamaServer(host, timeout=5))
        runtime = Runtime(None, TemplateLibrary(tmp_path / "t"), catalog, Records(tmp_path / "r.sqlite"))
        strategies = (Strategy("X", "ollama:x", "Plain question"), Strategy("Y", "ollama:y", "Plain question"))
        run_id = start_run(runtime, EvalRequest("o", "set", QUESTIONS[:2], strategies))
        assert run_evaluation(runtime, run_id) == "done"
    finally:
        server.clear()
        server.stop()
    data = report.load_run(runtime.records, run_id)
    assert [s.correct for s in report.summarize(data)] == [0.5, 0.5]  # "answer 0" is right for q0 only
    (x0, x1), (y0, y1) = spans["x"][0], spans["y"][0]
    assert y0 < x1 and x0 < y1  # the two strategies' first requests overlapped
    assert spans["x"][1][0] >= x1  # one strategy's questions still come one after another


def test_a_stored_run_is_rescored_with_the_checks_as_defined_now(tmp_path: Path) -> None:
    records = Records(tmp_path / "r.sqlite")
    request = EvalRequest("old", "set", QUESTIONS[:1], (A,))
    run_id = records.create_run(created="then", name="old", question_set="set", set_hash=request.set_hash,
                                spec=request.spec())  # fmt: skip
    row = {"created": "then", "question": "Question 0?", "strategy": "A", "model": "m", "template": "t",
           "template_version": 1, "answer": "It is answer 0.", "detail": {}, "run_id": run_id, "question_id": "q0",
           "metrics": {"correct": False, "similarity": 0.9}}  # fmt: skip
    records.add_answer(row)
    [c] = report.load_run(records, run_id).cells.values()
    assert c.correct and c.metrics["contains"] is True and c.metrics["similarity"] == 0.9


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [("CORRECT", True), ("correct.", True), ("WRONG", False), ("Incorrect: the year differs", False), ("maybe", None)],
)
def test_judge_replies_are_parsed(reply: str, verdict: bool | None) -> None:
    assert parse_verdict(reply) is verdict


def test_an_ollama_judge_grades_every_answer_and_its_reply_is_kept(tmp_path: Path, httpserver: HTTPServer) -> None:
    def chat(request: Request) -> Response:
        body = json.loads(request.data)
        text = body["messages"][-1]["content"]
        if body["model"] == "judge":
            reply = "CORRECT" if "Expected answer: answer 0\nAnswer to grade: answer 0" in text else "WRONG"
            assert body["messages"][0]["content"] == JUDGE_SYSTEM
        else:
            reply = "answer 0"
        lines = [{"model": body["model"], "message": {"role": "assistant", "content": reply}, "done": False},
                 {"model": body["model"], "message": {"role": "assistant", "content": ""}, "done": True,
                  "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 1}]  # fmt: skip
        return Response("".join(json.dumps(o) + "\n" for o in lines), content_type="application/x-ndjson")

    httpserver.expect_request("/api/show", method="POST").respond_with_json({"model_info": {}})
    httpserver.expect_request("/api/chat", method="POST").respond_with_handler(chat)
    host = httpserver.url_for("/").rstrip("/")
    catalog = ModelCatalog(Settings.from_env(ollama_host=host), EmbeddedEngine(), OllamaServer(host, timeout=5))
    runtime = Runtime(None, TemplateLibrary(tmp_path / "t"), catalog, Records(tmp_path / "r.sqlite"))
    request = EvalRequest(
        "j", "set", QUESTIONS[:2], (Strategy("X", "ollama:x", "Plain question"),), judge_model="ollama:judge"
    )
    run_id = start_run(runtime, request)
    assert run_evaluation(runtime, run_id) == "done"
    data = report.load_run(runtime.records, run_id)
    assert [(c.metrics["judge"], c.metrics["judge_reply"]) for c in data.cells.values()] == [
        (True, "CORRECT"), (False, "WRONG")
    ]  # fmt: skip
    assert report.summarize(data)[0].judge == 0.5
    with pytest.raises(EvaluationError, match="must be a served model"):
        EvalRequest("j", "set", QUESTIONS, (A,), judge_model="llama.cpp:small").check()
