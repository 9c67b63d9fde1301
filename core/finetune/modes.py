"""The seed's ways of combining RAG and fine-tuning, as training modes of the Fine-tune page.

- FT then RAG: the adapter learns the facts from plain questions; served with retrieval it is FT+RAG.
- Joint (retrieval-aware, in the manner of RAFT): each example is the RAG template rendered with the
  chunks retrieval returns for its question, the chunk that holds the answer ("golden") among
  distractors; in a share of examples the golden chunk is left out, so the answer comes from memory.
- Staged: evaluate RAG, train (joint-style) on the questions it got wrong, evaluate FT+RAG again.
- Iterative: rounds of evaluate, train on the failures so far, evaluate; stop when a round gains
  nothing or at the round limit.

This module prepares the training data of each mode; the staged and iterative rounds, which also
evaluate, run in `core.lab.rounds`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from core import adapters, matching
from core.errors import TrainingCancelled, TrainingError
from core.finetune.datasets import Pair
from core.finetune.examples import Rendered
from core.finetune.pipeline import TrainRequest
from core.finetune.train_settings import TrainSettings
from core.models import ModelInfo
from core.progress import CancelFlag
from core.prompts import Source
from core.store import SearchHit, Store
from core.strategies import RAG_TEMPLATE, RAG_TOP_K, Strategy
from core.template_library import TemplateLibrary

log = logging.getLogger(__name__)

Mode = Literal["ft_then_rag", "joint", "staged", "iterative"]
MODES: dict[Mode, tuple[str, str]] = {
    "ft_then_rag": (
        "FT then RAG",
        "The seed's domain adaptation: learns the facts from plain questions, retrieval adds what it did not learn. "
        "For a model that also answers without retrieval (FT: no search, lower latency) on facts that rarely change.",
    ),
    "joint": (
        "Joint",
        "Learns to read: each question is trained inside the RAG prompt, the right chunk among distractors. "
        "For a model served with retrieval (FT+RAG): the knowledge base stays the source, so facts can change.",
    ),
    "staged": (
        "Staged",
        "Evaluates RAG, trains on the questions it got wrong, evaluates FT+RAG again: before/after. For limited "
        "resources: fine-tune only what retrieval handles badly.",
    ),
    "iterative": (
        "Iterative",
        "Rounds of evaluate → train on the failures → evaluate, until a round gains nothing or the round limit. "
        "For knowledge-intensive tasks where one round leaves failures.",
    ),
}

# FT+RAG with each mode's defaults (bench/modes.py, 3 Dec 2026, SmolLM2; RAG on the base in brackets):
# brackenridge FT then RAG 62%, Joint 65% (65%); corvane 38%, 88% (83%); vellacourt 20%, 45% (45%); the Chinese
# sample on Gemma 73%, 83% (37%); Joint on the held-out sets at one epoch (JOINT_EPOCHS_DRAWN). A model trained on
# plain facts reads worse with retrieval; one trained inside the RAG prompt keeps its reading.
DEFAULT_MODE_HELP = (
    "Joint is chosen first when there is a knowledge base: served with retrieval (FT+RAG), its models answered "
    "3 to 41 points more of the sample sets' questions than FT then RAG's, within a question of RAG alone or "
    "above it (bench/modes.py)."
)


def default_mode(*, has_kb: bool) -> Mode:
    """The mode the Fine-tune page starts on.

    Joint, for a model served with retrieval, when there is a knowledge base to retrieve from; else FT then
    RAG, the one mode that needs none.
    """
    return "joint" if has_kb else "ft_then_rag"


# The share of joint examples rendered without the answer's chunk (RAFT trains some so, to answer from memory when
# retrieval misses). With the defaults, FT+RAG (bench/modes.py, 3 Dec 2026, one run each; RAG on the base 65% /
# 83% / 45%) on brackenridge / corvane / vellacourt: 0.2: 72% / 67% / 40%, control points forgotten 14 / 10 / 3;
# 0: 65% / 79% / 50%, forgotten 7 / 17 / 7. Learning to answer from memory cost the reading of questions the
# pairs do not hold (the held-out sets), where retrieval found the answer anyway. Without the replay as well:
# 68% / 75% / 40%, 34 / 28 / 7 points forgotten (with 0.2 and no replay: 68% / 79% / 55%, 38 / 14 / 7).
WITHOUT_GOLDEN = 0.0
# Retrieval-aware examples are RAG prompts of 300-400 tokens: the plain FT default (256) is too short.
JOINT_MAX_LENGTH = 640
JOINT_EPOCHS = 3
# Pairs drawn from a knowledge base (each keeps the sentence it was written from) train Joint for one epoch. The
# rules write each question from that sentence, so retrieval ranks its chunk first and the excerpt puts it first:
# every further epoch teaches "copy the first sentence", which a reader's own question often does not want.
# bench/modes.py, 3 Dec 2026, FT+RAG at 1 epoch against 3 (RAG on the base; control points forgotten): corvane
# 88% against 79% (83%; 0 against 17), vellacourt 45% against 50% (45%; 7 and 7), the Debian Reference 50%
# against 47% (57%; 0 against 10), training 28-39 s against 92-148 s. The user's own facts (the sample's, an upload)
# keep 3: asked as written, they are learned, and one epoch lost them (brackenridge 55% against 65%; RAG 65%).
JOINT_EPOCHS_DRAWN = 1
DRAWN_EPOCHS_NOTE = (
    "These pairs were drawn from a knowledge base, so Joint trains them for one epoch, not three: the questions "
    "were written from the sentence retrieval then puts first, and more epochs teach the model to copy that "
    "sentence. With retrieval, one epoch answered more on corvane (88% against 79%) and the Debian Reference, one "
    "question fewer on vellacourt (45% against 50%), and forgot fewer general answers: 0-10 control points "
    "against 7-17 (bench/modes.py)."
)
# With the 80 general examples replayed (TrainSettings.replay), half the plain learning rate: on corvane, joint
# training forgot 10 control points at 1e-3 against 14 at 2e-3 (and 14 without replay at either rate), for 67%
# FT+RAG against 71% (79% without replay): bench/modes.py. Those runs replayed the 80 every epoch, which the joint
# modes keep (replay_passes = epochs); the plain default spreads them over the epochs (TrainSettings.replay_passes).
JOINT_LEARNING_RATE = 1e-3


# A pre-trained base prompted in completion form (Gemma 3 270M) forgets far more than SmolLM2 at SmolLM2's rates:
# bench/modes.py --base gemma --sets qingwu, FT then RAG, control points forgotten of the 24 the base knows and
# FT+RAG: lr 2e-3 67 points, 73%; 1e-3 54, 90%; 5e-4 33, 83%. Joint at 1e-3: 67 points, 83%; at 5e-4: 42, 87%.
COMPLETION_LEARNING_RATE = 5e-4


def drawn(pairs: Sequence[Pair]) -> bool:
    """Whether most pairs were drawn from a knowledge base (they keep their sentence), not the user's own facts."""
    return sum(1 for p in pairs if p.evidence) * 2 > len(pairs)


def train_defaults(mode: Mode, *, completion: bool = False, drawn_pairs: bool = False) -> TrainSettings:
    """The LoRA settings each mode starts from (chosen on bench/modes.py's figures).

    `completion`: for a base without a chat template (Gemma 3 270M), which gets its own learning rate.
    `drawn_pairs`: the pairs were drawn from a knowledge base (`drawn`), which Joint trains for fewer epochs.
    """
    if mode == "ft_then_rag":
        settings = TrainSettings()
    else:
        epochs = JOINT_EPOCHS_DRAWN if drawn_pairs and mode == "joint" else JOINT_EPOCHS
        joint = replace(TrainSettings(), epochs=epochs, max_length=JOINT_MAX_LENGTH, learning_rate=JOINT_LEARNING_RATE)
        settings = replace(joint, replay_passes=epochs)
    return replace(settings, learning_rate=COMPLETION_LEARNING_RATE) if completion else settings


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
    if pair.evidence and matching.contains(chunk_text, pair.evidence):  # pairs drawn from a knowledge base
        return True
    return matching.is_correct(chunk_text, pair.answer)


def golden_chunk(pair: Pair, chunks: Sequence[SearchHit]) -> SearchHit | None:
    """The chunk that holds the answer; among several, the one with most of the answer's words."""
    found = [c for c in chunks if holds(c.text, pair)]
    return max(found, key=lambda c: matching.token_recall(c.text, pair.answer), default=None)


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
        rendered = template.render(pair.question, sources)
        completion = template.render_completion(pair.question, sources)  # for a base model without a chat template
        examples.append(Rendered.of(pair.question, answer, rendered, has_golden, completion))
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
