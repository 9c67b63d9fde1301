"""The staged and iterative training modes: evaluate, train on the failures, evaluate again, in rounds.

Evaluations go through the Evaluate runner's public API, so every round is a stored run the
Evaluate page can open; each round's training is `core.finetune.pipeline.run_training` on the
failures rendered joint-style (`core.finetune.modes.joint_request`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from core import adapters
from core.errors import TrainingCancelled, TrainingError
from core.evaluation.questions import EvalQuestion
from core.evaluation.report import RunData, failures, load_run, summarize
from core.evaluation.runner import CellDone, EvalRequest, run_evaluation, start_run
from core.finetune.datasets import Pair
from core.finetune.modes import JointSettings, Mode, joint_request
from core.finetune.pipeline import Phase, TrainRequest, run_training
from core.finetune.train_settings import TrainSettings
from core.finetune.trainer import Step
from core.lab.board import BackgroundJob, JobBoard, JobState
from core.progress import CancelFlag
from core.strategies import Runtime, Strategy

MAX_ROUNDS = 3
FAILURE_REPEAT = 2


@dataclass(frozen=True)
class Round:
    """One evaluation of a staged or iterative run: round 0 is RAG on the base model."""

    round: int
    strategy: str
    model: str
    run_id: int
    correct: float
    failures: int
    adapter: str | None = None
    trained_on: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    measured_run: int | None = None  # the separate measuring set's run, when there is one
    measured: float | None = None


@dataclass(frozen=True)
class LoopRequest:
    """A staged (one round) or iterative run.

    `questions` are evaluated and their failures trained on. `measure`, when given, is another
    question set asked after each round and never trained on (a held-out set): it reports, it does
    not decide.
    """

    name: str  # adapters are named <name>-r<round>
    questions: tuple[EvalQuestion, ...]
    question_set: str
    joint: JointSettings
    base_path: Path
    base_name: str
    settings: TrainSettings = TrainSettings()
    max_rounds: int = 1
    measure: tuple[EvalQuestion, ...] = ()
    measure_set: str = ""
    ollama_host: str | None = None
    # A finished evaluation run and its RAG column to start from (the Evaluate page's failures): it is
    # round 0, not asked again, and its questions replace `questions`.
    from_run: tuple[int, str] | None = None
    pairs: tuple[Pair, ...] = ()  # the pairs behind the questions, where known: their evidence sentences are learned
    replay: bool = True  # train on the questions answered right too (once; each failure twice)
    system: str | None = None  # the FT template's system prompt: the general examples replayed are asked with it

    @property
    def mode(self) -> Mode:
        return "staged" if self.max_rounds == 1 else "iterative"


@dataclass
class LoopResult:
    rounds: list[Round] = field(default_factory=list)
    stopped_because: str = ""

    @property
    def best(self) -> Round | None:
        return max(self.rounds, key=lambda r: (r.correct, -r.round), default=None)


def model_id_of(runtime: Runtime, adapter: adapters.Adapter) -> str:
    for m in runtime.models.available():
        if m.adapter is not None and m.adapter.resolve() == adapter.path.resolve():
            return m.id
    raise TrainingError(f"{adapter.name} was trained but is not in the model catalog; reload the page.")


def correct_share(run: RunData, strategy: str | None = None) -> float:
    """A column's share of correct answers (the run's first column by default)."""
    found = [s for s in summarize(run) if strategy is None or s.strategy == strategy]
    return (found[0].correct or 0.0) if found else 0.0


@dataclass
class _Callbacks:
    """What a loop reports as it goes: phases, training steps, answers, finished rounds."""

    on_phase: Callable[[Phase | str, str], None] | None = None
    on_step: Callable[[Step], None] | None = None
    on_cell: Callable[[CellDone, int, int], None] | None = None
    on_round: Callable[[Round], None] | None = None


def run_loop(
    data_dir: Path,
    runtime: Runtime,
    request: LoopRequest,
    *,
    embedder: Embeddings | None = None,
    on_phase: Callable[[Phase | str, str], None] | None = None,
    on_step: Callable[[Step], None] | None = None,
    on_cell: Callable[[CellDone, int, int], None] | None = None,
    on_round: Callable[[Round], None] | None = None,
    cancel: CancelFlag | None = None,
) -> LoopResult:
    """Evaluate RAG; then, per round, train on every failure so far and evaluate FT+RAG with the new adapter.

    Stops when a round is not better than the best before it, when nothing fails any more, or at
    `max_rounds`. Every trained adapter stays registered (its manifest says its round).
    """
    if runtime.store is None:
        raise TrainingError("Staged and iterative training need a knowledge base.")
    request.joint.validate()
    if request.max_rounds < 1:
        raise TrainingError("Set at least one round.")
    report = _Callbacks(on_phase, on_step, on_cell, on_round)
    return _Loop(data_dir, runtime, request, request.joint, embedder, report, cancel).run()


@dataclass
class _Loop:
    """One loop's rounds and what they share: the request, the joint settings, the callbacks, the result so far.

    Round 0 may replace the request's questions and the joint settings (a run the loop starts from).
    """

    data_dir: Path
    runtime: Runtime
    request: LoopRequest
    joint: JointSettings
    embedder: Embeddings | None
    report: _Callbacks
    cancel: CancelFlag | None
    result: LoopResult = field(default_factory=LoopResult)

    def phase(self, p: Phase | str, message: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise TrainingCancelled("Stopped; the models trained so far are kept.")
        if self.report.on_phase is not None:
            self.report.on_phase(p, message)

    def run(self) -> LoopResult:
        current, latest = self.first_round()
        request, result = self.request, self.result
        wrong: dict[str, EvalQuestion] = {q.id: q for q in failures(latest, current.strategy)}
        best = current
        for r in range(1, request.max_rounds + 1):
            if not current.failures:  # the latest evaluation got every question right
                result.stopped_because = "nothing fails any more"
                break
            adapter = self.train(r, current, wrong)
            train_s = adapter.manifest.train_seconds or 0.0
            model = model_id_of(self.runtime, adapter)
            current = self.evaluate(r, f"FT+RAG r{r}", model, adapter.name, len(wrong), train_s)
            if current.correct <= best.correct:
                result.stopped_because = f"round {r} gained nothing ({current.correct:.0%} vs {best.correct:.0%})"
                break
            best = current
            latest = load_run(self.runtime.records, current.run_id)
            # Every failure so far stays in the next round's data: a fresh adapter must not lose what the last one
            # learned.
            wrong |= {q.id: q for q in failures(latest, current.strategy)}
        else:
            result.stopped_because = f"the round limit ({request.max_rounds})"
        return result

    def first_round(self) -> tuple[Round, RunData]:
        """Round 0: RAG on the base model, asked now, or the finished run the request starts from."""
        if self.request.from_run is None:
            models = self.runtime.models.available()
            base_id = next((m.id for m in models if m.path == self.request.base_path and not m.fine_tuned), "")
            current = self.evaluate(0, "RAG", base_id, None, 0, 0.0)
            return current, load_run(self.runtime.records, current.run_id)
        run_id, column = self.request.from_run
        latest = load_run(self.runtime.records, run_id)
        strategy = next((s for s in latest.strategies if s.name == column), None)
        if strategy is None or not strategy.retrieval:
            raise TrainingError(f"Run {run_id} has no retrieval column {column!r} to learn from.")
        self.request = replace(self.request, questions=latest.questions, question_set=latest.question_set)
        # Served as that column was: its knowledge base, template and top-k.
        self.joint = replace(self.joint, kb=strategy.kb or self.joint.kb, template=strategy.template,
                             template_version=strategy.template_version, top_k=strategy.top_k,
                             retrieval_mode=strategy.retrieval_mode)  # fmt: skip
        current = Round(0, column, strategy.model, run_id, correct_share(latest, column),
                        len(failures(latest, column)))  # fmt: skip
        self.done(current)
        return current, latest

    def done(self, finished: Round) -> None:
        self.result.rounds.append(finished)
        if self.report.on_round is not None:
            self.report.on_round(finished)

    def train(self, r: int, current: Round, wrong: dict[str, EvalQuestion]) -> adapters.Adapter:
        """Round `r`'s adapter, trained on every failure so far (twice each) and, with replay, the rest once."""
        request = self.request
        # Failures alone (5 on corvane) taught the adapter to say those answers to everything: 81% -> 27% on the
        # questions asked. So each failure twice, and every question answered right once (replay).
        right = [q for q in request.questions if q.id not in wrong]
        chosen = [*wrong.values()] * FAILURE_REPEAT + (right if request.replay else [])
        known = {p.question: p for p in request.pairs}
        pairs = tuple(known.get(q.question, Pair(q.question, q.answer)) for q in chosen)
        name = f"{request.name}-r{r}" if request.max_rounds > 1 else request.name
        train = TrainRequest(name, f"{request.question_set} failures", pairs, request.base_path, request.base_name,
                             request.settings, request.system, request.ollama_host)  # fmt: skip
        self.phase("loading", f"Round {r}: rendering {len(wrong)} failed and "
                              f"{len(pairs) - FAILURE_REPEAT * len(wrong)} replayed questions with their retrieved "
                              "chunks…")  # fmt: skip
        assert self.runtime.store is not None
        train = joint_request(self.runtime.store, self.runtime.templates, train, self.joint, mode=request.mode,
                              cancel=self.cancel, source_run=current.run_id,
                              round=r if request.max_rounds > 1 else None,
                              correct_before=round(current.correct, 4))  # fmt: skip
        return run_training(self.data_dir, train, on_phase=self.report.on_phase, on_step=self.report.on_step,
                            cancel=self.cancel)  # fmt: skip

    def evaluate(self, r: int, label: str, model: str, adapter: str | None, trained: int, train_s: float) -> Round:
        """Round `r`: the questions (and the measuring set, when there is one) asked with `model` served as RAG."""
        request, j = self.request, self.joint
        strategy = Strategy(label, model, j.template, j.template_version, retrieval=True, kb=j.kb, top_k=j.top_k,
                            retrieval_mode=j.retrieval_mode)  # fmt: skip
        self.phase("evaluating", f"Round {r}: asking {len(request.questions)} questions with {label}…")
        started = time.perf_counter()
        run = self.ask(f"{request.name} · round {r}", request.question_set, request.questions, strategy)
        measured_run, measured = None, None
        if request.measure:
            self.phase("evaluating", f"Round {r}: asking the {len(request.measure)} measuring questions…")
            held = self.ask(f"{request.name} · round {r} · measured", request.measure_set, request.measure, strategy)
            measured_run, measured = held.id, correct_share(held)
        finished = Round(r, label, model, int(run.id or 0), correct_share(run), len(failures(run, label)), adapter,
                         trained, train_s, time.perf_counter() - started, measured_run, measured)  # fmt: skip
        self.done(finished)
        return finished

    def ask(self, name: str, question_set: str, questions: Sequence[EvalQuestion], strategy: Strategy) -> RunData:
        runtime = self.runtime
        run_id = start_run(runtime, EvalRequest(name, question_set, tuple(questions), (strategy,)))
        status = run_evaluation(runtime, run_id, embedder=self.embedder, on_cell=self.report.on_cell,
                                cancel=self.cancel)  # fmt: skip
        if status == "stopped":
            raise TrainingCancelled("Stopped during an evaluation; the models trained so far are kept.")
        return load_run(runtime.records, run_id)


def before_after(runtime: Runtime, before_run: int, after_run: int) -> list[dict[str, Any]]:
    """Per question of two rounds: the verdicts and answers before and after (the staged mode's table)."""
    old, new = load_run(runtime.records, before_run), load_run(runtime.records, after_run)
    (s_old,), (s_new,) = old.strategies, new.strategies
    rows = []
    for q in new.questions:
        a, b = old.cell(q.id, s_old.name), new.cell(q.id, s_new.name)
        rows.append({
            "question": q.question,
            "expected": q.answer,
            "before": bool(a and a.correct),
            "after": bool(b and b.correct),
            "before_answer": a.answer if a else "",
            "after_answer": b.answer if b else "",
        })  # fmt: skip
    return rows


@dataclass(kw_only=True)
class LoopView(JobState):
    """A consistent copy of a loop job's state for the page to draw."""

    request: LoopRequest
    phase: str = "queued"
    rounds: list[Round] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    cells: tuple[int, int] = (0, 0)  # answers done, total of the evaluation in progress
    stopped_because: str = ""


@dataclass
class LoopJob(BackgroundJob[LoopView]):
    """`run_loop` in a background thread; `view()` is safe to call from any session."""

    CRASHED = "The run failed"

    data_dir: Path
    runtime: Runtime
    request: LoopRequest
    embedder: Embeddings | None = None
    owner: str = ""

    def __post_init__(self) -> None:
        self._view = LoopView(request=self.request)

    def _thread_name(self) -> str:
        return f"loop-{self.request.name}"

    def _snapshot(self, view: LoopView) -> LoopView:
        return replace(view, rounds=list(view.rounds), steps=list(view.steps))

    def cancel(self) -> None:
        self.cancel_flag.set()
        self._update(message="Stopping…")

    def _phase(self, phase: str, message: str) -> None:
        def change(v: LoopView) -> LoopView:
            steps = [] if phase == "training" and v.phase != "training" else v.steps
            return replace(v, phase=phase, message=message, steps=steps)

        self._change(change)

    def _work(self) -> dict[str, Any]:
        result = run_loop(self.data_dir, self.runtime, self.request, embedder=self.embedder, on_phase=self._phase,
                          on_step=lambda step: self._append(lambda v: v.steps, step),
                          on_cell=lambda cell, done, total: self._update(cells=(done, total)),
                          on_round=lambda r: self._append(lambda v: v.rounds, r), cancel=self.cancel_flag)  # fmt: skip
        best = result.best
        message = f"Done: {result.stopped_because}." + (
            f" Best: {best.strategy} at {best.correct:.0%}." if best is not None else ""
        )
        return {"phase": "done", "message": message, "stopped_because": result.stopped_because}


def start_loop(board: JobBoard, job: LoopJob) -> LoopJob:
    """Start staged or iterative rounds on the process's board.

    Raises:
        BusyError: a heavy job (training, registration, an evaluation, rounds) is still running.
    """
    return board.start("rounds", job, label=job.request.name, data_dir=job.data_dir)


def latest_loop(board: JobBoard, data_dir: Path) -> LoopJob | None:
    """The newest staged or iterative run for this DATA_DIR, running or not."""
    job: LoopJob | None = board.latest("rounds", data_dir)
    return job
