"""The seed's ways of combining RAG and fine-tuning, as training modes of the Fine-tune page.

- FT then RAG: the adapter learns the facts from plain questions; served with retrieval it is FT+RAG.
- Joint (retrieval-aware, in the manner of RAFT): each example is the RAG template rendered with the
  chunks retrieval returns for its question, the chunk that holds the answer ("golden") among
  distractors; in a share of examples the golden chunk is left out, so the answer comes from memory.
- Staged: evaluate RAG, train (joint-style) on the questions it got wrong, evaluate FT+RAG again.
- Iterative: rounds of evaluate, train on the failures so far, evaluate; stop when a round gains
  nothing or at the round limit.

Evaluations go through the Evaluate runner's public API, so every round is a stored run the
Evaluate page can open.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from langchain_core.embeddings import Embeddings

from core.background import BackgroundJob, JobBoard
from core.errors import TrainingCancelled, TrainingError
from core.evaluation import metrics
from core.evaluation.questions import EvalQuestion
from core.evaluation.report import RunData, failures, load_run, summarize
from core.evaluation.runner import CellDone, EvalRequest, run_evaluation, start_run
from core.finetune import adapters
from core.finetune.datasets import Pair
from core.finetune.examples import Rendered
from core.finetune.jobs import Phase, TrainRequest, run_training
from core.finetune.trainer import Step, TrainSettings
from core.models import ModelInfo
from core.progress import CancelFlag
from core.prompts import Source, TemplateLibrary
from core.store import SearchHit, Store
from core.strategies import RAG_TEMPLATE, RAG_TOP_K, Runtime, Strategy

log = logging.getLogger(__name__)

Mode = Literal["ft_then_rag", "joint", "staged", "iterative"]
MODES: dict[Mode, tuple[str, str]] = {
    "ft_then_rag": ("FT then RAG", "Learns the facts from plain questions; with retrieval on, it is FT+RAG."),
    "joint": (
        "Joint",
        "Learns to read: each question is trained inside the RAG prompt, the right chunk among distractors "
        "(left out in some, so the answer also comes from memory).",
    ),
    "staged": ("Staged", "Evaluates RAG, trains on the questions it got wrong, evaluates FT+RAG again: before/after."),
    "iterative": (
        "Iterative",
        "Rounds of evaluate → train on the failures → evaluate, until a round gains nothing or the round limit.",
    ),
}

WITHOUT_GOLDEN = 0.2
# Retrieval-aware examples are RAG prompts of 300-400 tokens: the plain FT default (256) is too short.
JOINT_MAX_LENGTH = 640
MAX_ROUNDS = 3
FAILURE_REPEAT = 2
JOINT_EPOCHS = 3
# With the 80 general examples replayed (TrainSettings.replay), half the plain learning rate: on corvane, joint
# training forgot 10 control points at 1e-3 against 14 at 2e-3 (and 14 without replay at either rate), for 67%
# FT+RAG against 71% (79% without replay): bench/modes.py. Those runs replayed the 80 every epoch, which the joint
# modes keep (replay_passes = epochs); the plain default spreads them over the epochs (TrainSettings.replay_passes).
JOINT_LEARNING_RATE = 1e-3


def train_defaults(mode: Mode) -> TrainSettings:
    """The LoRA settings each mode starts from (chosen on bench/modes.py's figures)."""
    if mode == "ft_then_rag":
        return TrainSettings()
    joint = replace(
        TrainSettings(), epochs=JOINT_EPOCHS, max_length=JOINT_MAX_LENGTH, learning_rate=JOINT_LEARNING_RATE
    )
    return replace(joint, replay_passes=JOINT_EPOCHS)


@dataclass(frozen=True)
class JointSettings:
    """How joint examples are rendered: as the FT+RAG preset will be served, by default."""

    kb: str
    template: str = RAG_TEMPLATE
    template_version: int | None = None
    top_k: int = RAG_TOP_K
    without_golden: float = WITHOUT_GOLDEN
    retrieval_mode: str | None = None
    seed: int = 0
    # Learn the sentence a pair was drawn from (its evidence) rather than its short answer: the RAG template asks
    # for a full sentence, and a sentence carries the facts around the span (corvane's held-out questions ask those).
    full_sentence: bool = True

    def validate(self) -> None:
        if self.top_k < 1:
            raise TrainingError("Joint training needs top-k of at least 1.")
        if not 0 <= self.without_golden < 1:
            raise TrainingError("The share of examples without the answer's chunk must be in [0, 1).")


@dataclass(frozen=True)
class JointData:
    """Rendered examples, and what it took to make them."""

    examples: tuple[Rendered, ...]
    golden_retrieved: int  # the answer's chunk was in retrieval's top-k
    golden_unfound: int  # no chunk of the knowledge base holds the answer: rendered as retrieved

    @property
    def without_golden(self) -> int:
        return sum(1 for e in self.examples if e.golden is False)


def holds(chunk_text: str, pair: Pair) -> bool:
    """Whether a chunk holds the pair's answer: its evidence sentence, or the answer by the headline check."""
    if pair.evidence and metrics.contains(chunk_text, pair.evidence):  # pairs drawn from a knowledge base
        return True
    return metrics.is_correct(chunk_text, pair.answer)


def golden_chunk(pair: Pair, chunks: Sequence[SearchHit]) -> SearchHit | None:
    """The chunk that holds the answer; among several, the one with most of the answer's words."""
    found = [c for c in chunks if holds(c.text, pair)]
    return max(found, key=lambda c: metrics.token_recall(c.text, pair.answer), default=None)


def all_chunks(store: Store, kb: str) -> list[SearchHit]:
    return [h for doc in store.list_documents(kb) for h in store.chunks_of(kb, doc.doc_id)]


def _same(a: SearchHit, b: SearchHit) -> bool:
    return (a.doc_id, a.chunk_index) == (b.doc_id, b.chunk_index)


def joint_examples(
    store: Store,
    templates: TemplateLibrary,
    pairs: Sequence[Pair],
    settings: JointSettings,
    *,
    on_progress: Callable[[int, int, str], None] | None = None,
    cancel: CancelFlag | None = None,
) -> JointData:
    """Each pair rendered with the RAG template and the chunks retrieval returns for its question.

    The golden chunk is put among the top-k when retrieval missed it (in place of the last hit, at a
    random position); for `without_golden` of the pairs (chosen at random, seeded) it is replaced by
    the next chunk that does not hold the answer. The answer learned is the pair's evidence sentence
    when it has one and `full_sentence` is on, else its answer.
    """
    settings.validate()
    template = templates.get(settings.template, settings.template_version)
    if not template.uses_context:
        raise TrainingError(f"Template {template.name!r} has no {{context}}; joint training needs a RAG template.")
    rng = random.Random(settings.seed)
    n_without = round(len(pairs) * settings.without_golden)
    without = set(rng.sample(range(len(pairs)), n_without)) if pairs else set()
    everything: list[SearchHit] | None = None
    examples: list[Rendered] = []
    retrieved_golden = unfound = 0
    for i, pair in enumerate(pairs):
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled("Stopped while preparing the examples; nothing was trained.")
        if on_progress is not None:
            on_progress(i, len(pairs), f"Retrieving for {pair.question[:60]}")
        k = settings.top_k
        hits = store.search(settings.kb, pair.question, k=k + 3, mode=settings.retrieval_mode)
        golden = next((h for h in hits[:k] if holds(h.text, pair)), None)
        if golden is not None:
            retrieved_golden += 1
        else:
            if everything is None:
                everything = all_chunks(store, settings.kb)
            golden = golden_chunk(pair, everything)
        distractors = [h for h in hits if golden is None or (not _same(h, golden) and not holds(h.text, pair))]
        has_golden: bool | None
        if golden is None:
            unfound += 1
            chosen, has_golden = hits[:k], None
        elif i in without:
            chosen, has_golden = distractors[:k], False
        else:
            chosen = list(hits[:k]) if any(_same(h, golden) for h in hits[:k]) else distractors[: k - 1]
            if not any(_same(h, golden) for h in chosen):
                chosen.insert(rng.randrange(len(chosen) + 1), golden)
            has_golden = True
        sources = [Source(h.filename, h.page, h.text, h.heading) for h in chosen]
        answer = pair.evidence if settings.full_sentence and pair.evidence else pair.answer
        examples.append(Rendered.of(pair.question, answer, template.render(pair.question, sources), has_golden))
    if on_progress is not None:
        on_progress(len(pairs), len(pairs), "Examples ready")
    return JointData(tuple(examples), retrieved_golden, unfound)


def mode_record(
    mode: Mode,
    settings: JointSettings | None = None,
    data: JointData | None = None,
    *,
    template_version: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The manifest's `mode` entry: the mode, its settings and what rendering found."""
    record: dict[str, Any] = {"name": mode}
    if settings is not None:
        record |= {
            "kb": settings.kb,
            "template": settings.template,
            "template_version": template_version if template_version is not None else settings.template_version,
            "top_k": settings.top_k,
            "without_golden": settings.without_golden,
            "full_sentence": settings.full_sentence,
        }
    if data is not None:
        record |= {
            "examples": len(data.examples),
            "golden_retrieved": data.golden_retrieved,
            "golden_unfound": data.golden_unfound,
        }
    return record | {k: v for k, v in extra.items() if v is not None}


def joint_request(
    store: Store,
    templates: TemplateLibrary,
    request: TrainRequest,
    settings: JointSettings,
    *,
    mode: Mode = "joint",
    on_progress: Callable[[int, int, str], None] | None = None,
    cancel: CancelFlag | None = None,
    **extra: Any,
) -> TrainRequest:
    """The request with its pairs rendered joint-style, the mode recorded, and room for RAG prompts."""
    data = joint_examples(store, templates, request.pairs, settings, on_progress=on_progress, cancel=cancel)
    version = templates.get(settings.template, settings.template_version).version
    train = request.settings
    if train.max_length < JOINT_MAX_LENGTH:
        train = replace(train, max_length=JOINT_MAX_LENGTH)
    return replace(
        request,
        settings=train,
        examples=data.examples,
        mode=mode_record(mode, settings, data, template_version=version, **extra),
    )


def mode_of(adapter: adapters.Adapter) -> Mode:
    """The mode an adapter was trained in; one from before the modes learned plain facts."""
    name = adapter.manifest.mode.name if adapter.manifest.mode else "ft_then_rag"
    return name if name in MODES else "ft_then_rag"  # type: ignore[return-value]


def mode_strategies(data_dir: Path, models: Sequence[ModelInfo], kb: str, *, top_k: int = RAG_TOP_K) -> list[Strategy]:
    """One FT+RAG column per mode, with the newest adapter trained in it: "all four modes side by side".

    Columns are named "FT+RAG · <mode>" and keep the modes' order; a mode with no adapter yet has no
    column. Each is served like the FT+RAG preset, with the knowledge base `kb`.
    """
    by_path = {m.adapter.resolve(): m for m in models if m.adapter is not None}
    newest: dict[Mode, ModelInfo] = {}
    for adapter in adapters.list_adapters(data_dir):  # oldest first: later ones replace earlier
        model = by_path.get(adapter.path.resolve())
        if model is not None:
            newest[mode_of(adapter)] = model
    return [
        Strategy(f"FT+RAG · {label}", newest[mode].id, RAG_TEMPLATE, retrieval=True, kb=kb, top_k=top_k)
        for mode, (label, _) in MODES.items()
        if mode in newest
    ]


# --- evaluate -> train on failures -> evaluate ---------------------------------------------------------------


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


def _evaluate(
    runtime: Runtime,
    name: str,
    question_set: str,
    questions: Sequence[EvalQuestion],
    strategy: Strategy,
    embedder: Embeddings | None,
    on_cell: Callable[[CellDone, int, int], None] | None,
    cancel: CancelFlag | None,
) -> RunData:
    run_id = start_run(runtime, EvalRequest(name, question_set, tuple(questions), (strategy,)))
    status = run_evaluation(runtime, run_id, embedder=embedder, on_cell=on_cell, cancel=cancel)
    if status == "stopped":
        raise TrainingCancelled("Stopped during an evaluation; the models trained so far are kept.")
    return load_run(runtime.records, run_id)


def correct_share(run: RunData, strategy: str | None = None) -> float:
    """A column's share of correct answers (the run's first column by default)."""
    found = [s for s in summarize(run) if strategy is None or s.strategy == strategy]
    return (found[0].correct or 0.0) if found else 0.0


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

    def phase(p: Phase | str, message: str) -> None:
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled("Stopped; the models trained so far are kept.")
        if on_phase is not None:
            on_phase(p, message)

    base_id = next((m.id for m in runtime.models.available() if m.path == request.base_path and not m.fine_tuned), "")
    j = request.joint
    result = LoopResult()

    def evaluate(r: int, label: str, model: str, adapter: str | None, trained: int, train_s: float) -> Round:
        strategy = Strategy(label, model, j.template, j.template_version, retrieval=True, kb=j.kb, top_k=j.top_k,
                            retrieval_mode=j.retrieval_mode)  # fmt: skip
        phase("evaluating", f"Round {r}: asking {len(request.questions)} questions with {label}…")
        started = time.perf_counter()
        run = _evaluate(runtime, f"{request.name} · round {r}", request.question_set, request.questions, strategy,
                        embedder, on_cell, cancel)  # fmt: skip
        measured_run, measured = None, None
        if request.measure:
            phase("evaluating", f"Round {r}: asking the {len(request.measure)} measuring questions…")
            held = _evaluate(runtime, f"{request.name} · round {r} · measured", request.measure_set, request.measure,
                             strategy, embedder, on_cell, cancel)  # fmt: skip
            measured_run, measured = held.id, correct_share(held)
        done = Round(r, label, model, int(run.id or 0), correct_share(run), len(failures(run, label)), adapter,
                     trained, train_s, time.perf_counter() - started, measured_run, measured)  # fmt: skip
        result.rounds.append(done)
        if on_round is not None:
            on_round(done)
        return done

    if request.from_run is not None:
        run_id, column = request.from_run
        latest = load_run(runtime.records, run_id)
        strategy = next((s for s in latest.strategies if s.name == column), None)
        if strategy is None or not strategy.retrieval:
            raise TrainingError(f"Run {run_id} has no retrieval column {column!r} to learn from.")
        request = replace(request, questions=latest.questions, question_set=latest.question_set)
        # Served as that column was: its knowledge base, template and top-k.
        j = replace(j, kb=strategy.kb or j.kb, template=strategy.template, template_version=strategy.template_version,
                    top_k=strategy.top_k, retrieval_mode=strategy.retrieval_mode)  # fmt: skip
        current = Round(0, column, strategy.model, run_id, correct_share(latest, column),
                        len(failures(latest, column)))  # fmt: skip
        result.rounds.append(current)
        if on_round is not None:
            on_round(current)
    else:
        current = evaluate(0, "RAG", base_id, None, 0, 0.0)
        latest = load_run(runtime.records, current.run_id)
    wrong: dict[str, EvalQuestion] = {q.id: q for q in failures(latest, current.strategy)}
    best = current
    for r in range(1, request.max_rounds + 1):
        if not current.failures:  # the latest evaluation got every question right
            result.stopped_because = "nothing fails any more"
            break
        # Failures alone (5 on corvane) taught the adapter to say those answers to everything: 81% -> 27% on the
        # questions asked. So each failure twice, and every question answered right once (replay).
        right = [q for q in request.questions if q.id not in wrong]
        chosen = [*wrong.values()] * FAILURE_REPEAT + (right if request.replay else [])
        known = {p.question: p for p in request.pairs}
        pairs = tuple(known.get(q.question, Pair(q.question, q.answer)) for q in chosen)
        name = f"{request.name}-r{r}" if request.max_rounds > 1 else request.name
        train = TrainRequest(name, f"{request.question_set} failures", pairs, request.base_path, request.base_name,
                             request.settings, request.system, request.ollama_host)  # fmt: skip
        phase("loading", f"Round {r}: rendering {len(wrong)} failed and {len(pairs) - FAILURE_REPEAT * len(wrong)} "
                         "replayed questions with their retrieved chunks…")  # fmt: skip
        train = joint_request(runtime.store, runtime.templates, train, j, mode=request.mode, cancel=cancel,
                              source_run=current.run_id, round=r if request.max_rounds > 1 else None,
                              correct_before=round(current.correct, 4))  # fmt: skip
        adapter = run_training(data_dir, train, on_phase=on_phase, on_step=on_step, cancel=cancel)
        model = model_id_of(runtime, adapter)
        train_s = adapter.manifest.train_seconds or 0.0
        current = evaluate(r, f"FT+RAG r{r}", model, adapter.name, len(wrong), train_s)
        if current.correct <= best.correct:
            result.stopped_because = f"round {r} gained nothing ({current.correct:.0%} vs {best.correct:.0%})"
            break
        best = current
        latest = load_run(runtime.records, current.run_id)
        # Every failure so far stays in the next round's data: a fresh adapter must not lose what the last one learned.
        wrong |= {q.id: q for q in failures(latest, current.strategy)}
    else:
        result.stopped_because = f"the round limit ({request.max_rounds})"
    return result


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


# --- a background job for the page ---------------------------------------------------------------------------


@dataclass
class LoopView:
    """A consistent copy of a loop job's state for the page to draw."""

    request: LoopRequest
    phase: str
    message: str
    rounds: list[Round]
    steps: list[Step]
    cells: tuple[int, int]  # answers done, total of the evaluation in progress
    started: float
    finished: float | None
    stopped_because: str = ""

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.time()) - self.started


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
        self._view = LoopView(self.request, "queued", "Starting…", [], [], (0, 0), time.time(), None)

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
        BusyError: a heavy job (training, an evaluation, rounds) is still running.
    """
    return board.start("rounds", job, label=job.request.name, data_dir=job.data_dir)


def latest_loop(board: JobBoard, data_dir: Path) -> LoopJob | None:
    """The newest staged or iterative run for this DATA_DIR, running or not."""
    job: LoopJob | None = board.latest("rounds", data_dir)
    return job
