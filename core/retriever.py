"""Training the retriever: the embedding model fine-tuned on pseudo-labelled pairs from a knowledge base.

The retrieval half of the seed's joint training: questions generated from a knowledge base,
each paired with the chunk it came from, teach the embedding model (sentence-transformers' own
trainer, MultipleNegativesRankingLoss: the other chunks of a batch are the negatives). The tuned
model is saved under `DATA_DIR/embeddings/<name>` and listed as `tuned:<name>`; a knowledge base
re-embedded with it (`Store.copy_kb`) records that name like any other. `evaluate` gives hit@k and
MRR on a question set before and after. Only sentence-transformers models train here (the bundled
MiniLM); the 4-bit multilingual E5 runs in a C engine that cannot be trained.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.embeddings import TUNED_PREFIX, bundled_model_path, tuned_model_dir
from core.errors import EmbeddingError
from core.finetune.generate import pairs_from_hits
from core.samples import Question
from core.store import SearchHit, Store

log = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"(?<=[。！？.!?])\s*")


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


def pseudo_labels(store: Store, kb: str, *, limit: int = 400, seed: int = 0) -> list[TrainingPair]:
    """Questions generated from each chunk (see `core.finetune.generate`), paired with their chunk.

    A chunk without a fact sentence the generator can phrase as a question (Chinese text, for
    one) contributes its sentences as queries instead (the inverse cloze task).
    """
    out: list[TrainingPair] = []
    for doc in store.list_documents(kb):
        for hit in store.chunks_of(kb, doc.doc_id):
            questions = [p.question for p in pairs_from_hits([hit])]
            if not questions:
                questions = [s for s in _SENTENCE_END.split(hit.text) if len(s.strip()) >= 8][:3]
            out += [TrainingPair(q, hit.text) for q in questions]
    random.Random(seed).shuffle(out)
    return out[:limit]


def evaluate(
    search: Callable[[str], list[SearchHit]], questions: Sequence[Question], *, ks: Sequence[int] = (1, 3, 5)
) -> RetrievalScores:
    """hit@k and MRR of the expected (file, page) in the ranked results of each question."""
    ranks: list[int | None] = []
    for q in questions:
        found = [(h.filename, h.page) for h in search(q.question)]
        ranks.append(found.index((q.source, q.page)) + 1 if (q.source, q.page) in found else None)
    n = max(len(ranks), 1)
    hits = {k: sum(r is not None and r <= k for r in ranks) / n for k in ks}
    return RetrievalScores(hits=hits, mrr=sum(1 / r for r in ranks if r) / n, questions=len(ranks))


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
) -> str:
    """Fine-tune the embedding model on the pairs and save it; returns its catalog name (`tuned:<name>`).

    Raises:
        EmbeddingError: too few pairs, a bad name, or training failed.

    """
    if len(pairs) < 2:
        raise EmbeddingError("Training the retriever needs at least 2 question/chunk pairs; add documents first.")
    target = tuned_model_dir(data_dir, name)
    if target.exists():
        raise EmbeddingError(f"A tuned embedding model named {name!r} exists already; pick another name.")
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    started = time.perf_counter()
    try:
        model = SentenceTransformer(str(base or bundled_model_path()), device="cpu", local_files_only=True)
        dataset = Dataset.from_dict({"anchor": [p.question for p in pairs], "positive": [p.chunk for p in pairs]})
        staging = target.with_name(f".{target.name}.staging")
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
            logging_steps=10,
            use_cpu=True,
            seed=seed,
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=dataset, loss=MultipleNegativesRankingLoss(model)
        )
        trainer.train()
        model.save(str(staging))
        staging.rename(target)  # listed only once complete
    except EmbeddingError:
        raise
    except Exception as e:  # noqa: BLE001 - torch, datasets and I/O errors get one message
        raise EmbeddingError(f"Training the retriever failed: {e}") from e
    log.info("Trained %s on %d pairs in %.1f s", name, len(pairs), time.perf_counter() - started)
    return TUNED_PREFIX + name
