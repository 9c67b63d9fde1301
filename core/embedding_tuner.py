"""Training the retriever: the embedding model fine-tuned on pseudo-labelled pairs from a knowledge base.

The retrieval half of the seed's joint training: questions generated from a knowledge base,
each paired with the chunk it came from, teach the embedding model (sentence-transformers' own
trainer, MultipleNegativesRankingLoss: the other chunks of a batch are the negatives). The tuned
model is saved under `DATA_DIR/embeddings/<name>` and listed as `tuned:<name>`; a knowledge base
re-embedded with it (`core.kb_transfer.copy_kb`) records that name like any other. `evaluate` gives hit@k and
MRR on a question set before and after. Only sentence-transformers models train here (the bundled
MiniLM); the 4-bit multilingual E5 runs in a C engine that cannot be trained.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.embeddings import BUNDLED_MODEL, TUNED_PREFIX, bundled_model_path, tuned_model_dir
from core.errors import EmbeddingError, TrainingCancelled
from core.finetune.generate import pairs_from_kb
from core.kb_transfer import copy_kb
from core.progress import CancelFlag, Progress
from core.store import SearchHit, Store, check_kb_name
from core.text import SENTENCE_BREAK

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPair:
    """A pseudo-label: a question generated from a chunk, and that chunk."""

    question: str
    chunk: str


@dataclass(frozen=True)
class RetrievalScores:
    """hit@k for each k asked, and MRR over the first `depth` results."""

    hits: dict[int, float]
    mrr: float
    questions: int


def _flat(text: str) -> str:
    return " ".join(text.split())


def pseudo_labels(store: Store, kb: str, *, limit: int = 400, seed: int = 0) -> list[TrainingPair]:
    """Questions generated from the knowledge base (`core.finetune.generate.pairs_from_kb`), each with its chunk.

    A question's chunk is the one holding the sentence it was drawn from. A chunk without a fact
    sentence the generator can phrase as a question (Chinese text, for one) contributes its
    sentences as queries instead (the inverse cloze task).
    """
    chunks = [h.text for doc in store.list_documents(kb) for h in store.chunks_of(kb, doc.doc_id)]
    flat = [_flat(c) for c in chunks]
    out: list[TrainingPair] = []
    covered: set[int] = set()
    for pair in pairs_from_kb(store, kb, limit=10 * limit):
        sentence = _flat(pair.evidence or pair.answer)
        i = next((i for i, c in enumerate(flat) if sentence and sentence in c), None)
        if i is not None:
            out.append(TrainingPair(pair.question, chunks[i]))
            covered.add(i)
    for i, chunk in enumerate(chunks):
        if i not in covered:
            out += [TrainingPair(s, chunk) for s in SENTENCE_BREAK.split(chunk) if len(s.strip()) >= 8][:3]
    random.Random(seed).shuffle(out)
    return out[:limit]


class Expected(Protocol):
    """A question and where its answer is written (`core.samples.Question`, a question set's rows)."""

    @property
    def question(self) -> str: ...
    @property
    def source(self) -> str | None: ...
    @property
    def page(self) -> int | None: ...


def evaluate(
    search: Callable[[str], list[SearchHit]], questions: Sequence[Expected], *, ks: Sequence[int] = (1, 3, 5)
) -> RetrievalScores:
    """hit@k and MRR of the expected (file, page) in the ranked results of each question.

    A question without a source is skipped; one without a page is found on any page of its file.
    """
    ranks: list[int | None] = []
    for q in questions:
        if not q.source:
            continue
        found = [h.filename == q.source and (q.page is None or h.page == q.page) for h in search(q.question)]
        ranks.append(found.index(True) + 1 if True in found else None)
    n = max(len(ranks), 1)
    hits = {k: sum(r is not None and r <= k for r in ranks) / n for k in ks}
    return RetrievalScores(hits=hits, mrr=sum(1 / r for r in ranks if r) / n, questions=len(ranks))


def is_trainable(model: str) -> bool:
    """Whether a knowledge base embedded with `model` can have its retriever trained here."""
    return model == BUNDLED_MODEL or model.startswith(TUNED_PREFIX)


def trainable_base(data_dir: Path, model: str) -> Path:
    """The files to train from, for a knowledge base embedded with `model`.

    Raises:
        EmbeddingError: the model cannot be trained here (multilingual E5 runs in a C engine, Ollama's on a server).

    """
    if model == BUNDLED_MODEL:
        return bundled_model_path()
    if model.startswith(TUNED_PREFIX):
        return tuned_model_dir(data_dir, model.removeprefix(TUNED_PREFIX))
    raise EmbeddingError(
        f"{model} cannot be trained here: only {BUNDLED_MODEL} and models tuned from it can. Create a knowledge "
        f"base with {BUNDLED_MODEL} (on Documents) and train that one."
    )


def delete_tuned(data_dir: Path, name: str) -> None:
    """Remove a tuned model's folder (its catalog name is `tuned:<name>`)."""
    shutil.rmtree(tuned_model_dir(data_dir, name.removeprefix(TUNED_PREFIX)), ignore_errors=True)


def train(
    data_dir: Path,
    name: str,
    pairs: Sequence[TrainingPair],
    *,
    base: Path | None = None,
    epochs: int = 1,
    batch_size: int = 16,
    learning_rate: float = 2e-5,
    seed: int = 0,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> str:
    """Fine-tune the embedding model on the pairs and save it; returns its catalog name (`tuned:<name>`).

    `progress` hears of every training step; `cancel` stops after the step in progress. Stopped
    or failed, nothing is left behind (the model is written to a staging folder, renamed when whole).

    Raises:
        EmbeddingError: too few pairs, a bad name, or training failed.
        TrainingCancelled: `cancel` was set.

    """
    if len(pairs) < 2:
        raise EmbeddingError("Training the retriever needs at least 2 question/chunk pairs; add documents first.")
    target = tuned_model_dir(data_dir, name)
    if target.exists():
        raise EmbeddingError(f"A tuned embedding model named {name!r} exists already; pick another name.")
    started = time.perf_counter()
    staging = target.with_name(f".{target.name}.staging")
    try:
        model = _fit(staging, pairs, base, epochs, batch_size, learning_rate, seed, progress, cancel)
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled("Retriever training was stopped; nothing was saved.")
        model.save(str(staging))
        staging.rename(target)  # listed only once complete
    except (EmbeddingError, TrainingCancelled):
        raise
    except Exception as e:  # noqa: BLE001 - torch, datasets and I/O errors get one message
        raise EmbeddingError(f"Training the retriever failed: {e}") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # stopped, failed, or renamed already
    log.info("Trained %s on %d pairs in %.1f s", name, len(pairs), time.perf_counter() - started)
    return TUNED_PREFIX + name


def _fit(
    staging: Path,
    pairs: Sequence[TrainingPair],
    base: Path | None,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    progress: Progress | None,
    cancel: CancelFlag | None,
) -> Any:
    """The SentenceTransformer trained on the pairs by sentence-transformers' own trainer (not saved yet)."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    from transformers import PrinterCallback

    model = SentenceTransformer(str(base or bundled_model_path()), device="cpu", local_files_only=True)
    dataset = Dataset.from_dict({"anchor": [p.question for p in pairs], "positive": [p.chunk for p in pairs]})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(staging),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=0.1,  # a share of the steps (transformers 5)
        # Two pairs from one chunk in a batch would be each other's false negatives.
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        logging_steps=1,
        use_cpu=True,
        seed=seed,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=MultipleNegativesRankingLoss(model),
        callbacks=[_step_reporter(progress, cancel)],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log line to stdout once tqdm is off
    trainer.train()
    return model


def _step_reporter(progress: Progress | None, cancel: CancelFlag | None) -> Any:
    """A transformers callback: `progress` hears of each step with its loss, `cancel` stops after it."""
    from transformers import TrainerCallback

    class Report(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if progress is not None:
                loss = next((h["loss"] for h in reversed(state.log_history) if "loss" in h), None)
                shown = f" · loss {loss:.3f}" if loss is not None else ""
                step, total = state.global_step, state.max_steps
                progress(step, total, f"training step {step}/{total}{shown}")
            if cancel is not None and cancel.is_set():
                control.should_training_stop = True

    return Report()


@dataclass(frozen=True)
class Round:
    """One round of retriever training: what it trained on, and the re-embedded knowledge base's scores."""

    number: int
    model: str
    kb: str
    new_pairs: int
    failures: int
    scores: RetrievalScores
    seconds: float


@dataclass
class TuneResult:
    """Scores before training, each round after, the round kept, and why the rounds stopped."""

    before: RetrievalScores
    rounds: list[Round] = field(default_factory=list)
    kept: Round | None = None
    stopped: str = ""


def round_name(name: str, number: int) -> str:
    """The tuned model and knowledge base of round `number` are both named `<name>-r<number>`."""
    return f"{name}-r{number}"


def tune(
    store: Store,
    data_dir: Path,
    kb: str,
    name: str,
    pairs: Sequence[TrainingPair],
    questions: Sequence[Expected],
    *,
    rounds: int = 1,
    pairs_per_round: int = 64,
    epochs: int = 1,
    batch_size: int = 16,
    mode: str | None = None,
    ks: Sequence[int] = (1, 3, 5),
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
    on_round: Callable[[TuneResult], None] | None = None,
) -> TuneResult:
    """Train the retriever of `kb` in rounds, re-embed `kb` after each, and keep the best round.

    Round 1 trains the knowledge base's own model on the first `pairs_per_round` pairs. Each later
    round starts from the previous round's model and trains on its failures (pairs whose chunk its
    search does not rank first) plus the next `pairs_per_round` pairs it has not seen. After each
    round the knowledge base is copied, re-embedded with the new model, as `<name>-r<n>`, and
    measured on `questions` (hit@k, MRR; search `mode`, default the knowledge base's own). The rounds
    stop when one does not raise MRR over the best so far, at `rounds`, or when nothing is left to
    train on; `on_round` sees the result so far after each. The best round's model and knowledge
    base are kept, the others deleted; stopped (`cancel`, or an exception such as Streamlit's
    rerun), everything this call made is deleted.

    Raises:
        EmbeddingError: the model cannot be trained, a name is taken, or training failed.
        KnowledgeBaseError: a round's knowledge base name is not valid.
        TrainingCancelled: `cancel` was set.

    """
    source = store.require_kb(kb)
    run = _Rounds(store, data_dir, kb, questions, trainable_base(data_dir, source.embedding_model),
                  epochs=epochs, batch_size=batch_size, mode=mode, ks=ks, progress=progress, cancel=cancel)  # fmt: skip
    names = _free_round_names(store, data_dir, name, rounds)
    if not [q for q in questions if q.source]:
        raise EmbeddingError("The question set names no source documents, so hits cannot be counted; pick another.")
    run.report(0, 0, "Measuring the knowledge base before training…")
    result = TuneResult(before=run.measure(kb))
    run.best_mrr = result.before.mrr
    try:
        run.run_all(result, names, pairs, pairs_per_round, on_round)
    except BaseException:
        for each in run.made:  # stopped or failed: nothing of this call stays
            _remove_round(store, data_dir, each)
        raise
    return result


@dataclass
class _Rounds:
    """What every round of `tune` shares, and what each leaves to the next (its model, the pairs seen and failed)."""

    store: Store
    data_dir: Path
    kb: str
    questions: Sequence[Expected]
    base: Path  # the model the next round starts from
    epochs: int = 1
    batch_size: int = 16
    mode: str | None = None
    ks: Sequence[int] = (1, 3, 5)
    progress: Progress | None = None
    cancel: CancelFlag | None = None
    best_mrr: float = 0.0
    seen: list[TrainingPair] = field(default_factory=list)
    failures: list[TrainingPair] = field(default_factory=list)
    made: list[str] = field(default_factory=list)  # round names whose model or knowledge base exists

    def report(self, done: int, total: int, message: str) -> None:
        if self.progress is not None:
            self.progress(done, total, message)

    def measure(self, kb_name: str) -> RetrievalScores:
        depth = max(self.ks)
        return evaluate(lambda q: self.store.search(kb_name, q, k=depth, mode=self.mode), self.questions, ks=self.ks)

    def run_all(self, result: TuneResult, names: list[str], pairs: Sequence[TrainingPair], pairs_per_round: int,
                on_round: Callable[[TuneResult], None] | None) -> None:  # fmt: skip
        """The rounds of `tune`, one per name, until one gains nothing, nothing is left, or the names run out."""
        for number, round_kb in enumerate(names, start=1):
            fresh = list(pairs[(number - 1) * pairs_per_round : number * pairs_per_round])
            if len(self.failures + fresh) < 2:
                result.stopped = f"Round {number} had nothing left to train on (every pair seen, none failed)."
                return
            done = self.train_round(number, round_kb, fresh)
            result.rounds.append(done)
            if on_round is not None:
                on_round(result)
            if not _keep_better(self.store, self.data_dir, result, done, self.best_mrr, self.made):
                return
            self.best_mrr, self.base = max(self.best_mrr, done.scores.mrr), tuned_model_dir(self.data_dir, round_kb)
            if self.cancel is not None and self.cancel.is_set():
                raise TrainingCancelled("Retriever training was stopped.")
        rounds = len(names)
        result.stopped = f"Reached the limit of {rounds} round{'s' if rounds != 1 else ''}."

    def train_round(self, number: int, round_kb: str, fresh: list[TrainingPair]) -> Round:
        """Train on the last round's failures and `fresh`, re-embed the knowledge base as `round_kb`, measure it."""
        started = time.perf_counter()
        batch = self.failures + fresh

        def step(done: int, total: int, message: str) -> None:
            self.report(done, total, f"Round {number}: {message}")

        self.made.append(round_kb)
        model = train(self.data_dir, round_kb, batch, base=self.base, epochs=self.epochs, batch_size=self.batch_size,
                      progress=step, cancel=self.cancel)  # fmt: skip
        step(0, 0, f"re-embedding {self.kb} with {model}…")
        copy_kb(self.store, self.kb, round_kb, embedding_model=model)
        step(0, 0, "measuring on the question set…")
        scores = self.measure(round_kb)
        self.seen += fresh
        step(0, 0, "finding the questions it still gets wrong…")
        self.failures = [p for p in self.seen if not _ranked_first(self.store, round_kb, p)]
        return Round(
            number, model, round_kb, len(fresh), len(batch) - len(fresh), scores, time.perf_counter() - started
        )


def _free_round_names(store: Store, data_dir: Path, name: str, rounds: int) -> list[str]:
    """Each round's name (`round_name`), checked to be a valid knowledge-base name no one holds yet.

    Raises:
        KnowledgeBaseError: a name is not valid.
        EmbeddingError: a knowledge base or tuned model has that name already.
    """
    names = [round_name(name, n) for n in range(1, rounds + 1)]
    existing = {k.name for k in store.list_kbs()}
    for each in names:
        check_kb_name(each)
        if each in existing or tuned_model_dir(data_dir, each).exists():
            raise EmbeddingError(f"{each} exists already (a knowledge base or tuned model); pick another name.")
    return names


def _keep_better(store: Store, data_dir: Path, result: TuneResult, done: Round, best_mrr: float, made: list[str]
                 ) -> bool:  # fmt: skip
    """Keep round `done` when it is the first or raises MRR, deleting the round kept before; False otherwise.

    A round that gains nothing is deleted, and `result.stopped` says why the rounds stop there.
    """
    if result.kept is None or done.scores.mrr > best_mrr:
        if result.kept is not None:
            _remove_round(store, data_dir, result.kept.kb)
            made.remove(result.kept.kb)
        result.kept = done
        return True
    _remove_round(store, data_dir, done.kb)
    made.remove(done.kb)
    result.stopped = f"Round {done.number} did not raise MRR over round {result.kept.number}; stopped there."
    return False


def _ranked_first(store: Store, kb: str, pair: TrainingPair) -> bool:
    hits = store.search(kb, pair.question, k=1, mode="dense")  # training moves the dense side only
    return bool(hits) and hits[0].text == pair.chunk


def _remove_round(store: Store, data_dir: Path, round_name: str) -> None:
    if round_name in {k.name for k in store.list_kbs()}:
        store.delete_kb(round_name)
    if store.catalog is not None:
        store.catalog.forget(TUNED_PREFIX + round_name)
    delete_tuned(data_dir, round_name)
