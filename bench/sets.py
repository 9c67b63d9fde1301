"""The question sets the benches ask: a sample's, its knowledge base made as Load sample makes it, or a real
document's (bench/real_docs.py's Debian Reference, made as a new user's knowledge base)."""

from __future__ import annotations

from bench import real_docs
from bench.common import Offline
from core.evaluation import questions as qs
from core.ingest import ingest
from core.samples import SAMPLES, Sample


def sample_kb(stack: Offline, sample: Sample) -> str:
    """The sample's knowledge base, with the model and chunking Load sample uses, unless DATA_DIR has it."""
    s, kb = stack.settings, sample.kb_name
    if kb not in [k.name for k in stack.store.list_kbs()]:
        stack.store.create_kb(kb, chunk_size=s.chunk_size, chunk_overlap=s.chunk_overlap,
                              embedding_model=sample.embedding_model, analyser=sample.analyser)  # fmt: skip
        ingest(stack.store, kb, sample.uploads())
    return kb


def question_set(stack: Offline, kb: str) -> tuple[str, tuple[qs.EvalQuestion, ...], str]:
    """The set named `kb` (a sample's or `real_docs.SETS`'), its knowledge base ready: (set name, questions,
    language)."""
    if kb in real_docs.SETS:
        name, questions = real_docs.knowledge_base(stack, kb)
        return name, questions, real_docs.SETS[kb]
    sample = SAMPLES[kb]
    sample_kb(stack, sample)
    found = qs.sample_set(kb)
    return found.name, found.questions, sample.language
