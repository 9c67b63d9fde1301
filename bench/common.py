"""What the benches share: the app's embedded stack on one DATA_DIR, with no Ollama and no Qdrant server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.config import Settings
from core.embeddings import EmbeddingCatalog, EmbeddingModel, load_bundled
from core.engine import EmbeddedEngine
from core.evaluation import questions as qs
from core.ingest import ingest
from core.models import ModelCatalog
from core.records import Records
from core.samples import SAMPLES, Sample
from core.store import Store
from core.strategies import Runtime
from core.template_library import TemplateLibrary


@dataclass
class Offline:
    settings: Settings
    embedder: EmbeddingModel
    store: Store
    catalog: ModelCatalog
    runtime: Runtime


def offline(data_dir: Path) -> Offline:
    """Settings, bundled MiniLM, Qdrant local mode, the embedded models and a Runtime, as the app builds them."""
    settings = Settings.from_env(data_dir=data_dir, ollama_host=None, qdrant_url=None, qdrant_path=None)
    embedder = load_bundled()
    # As the app opens it: knowledge bases built with another model (the Chinese sample's E5) load it by name.
    store = Store.open(settings, embedder, EmbeddingCatalog(ollama_host=None, data_dir=data_dir, preloaded=[embedder]))
    catalog = ModelCatalog(settings, EmbeddedEngine(), None)
    runtime = Runtime(store, TemplateLibrary(data_dir / "templates"), catalog, Records(data_dir / "records.sqlite"))
    return Offline(settings, embedder, store, catalog, runtime)


@dataclass(frozen=True)
class Figure:
    """One figure a bench checks against its target, printed in the summary block `bench/all.py` reads."""

    name: str
    value: float
    op: str  # "<=" or ">="
    target: float

    @property
    def met(self) -> bool:
        return self.value <= self.target if self.op == "<=" else self.value >= self.target


def summary(*figures: Figure) -> None:
    """Print the bench's figures as `summary:` lines: `  name value (target op number)`."""
    print("\nsummary:")
    for f in figures:
        print(f"  {f.name} {f.value:.3f} (target {f.op} {f.target:g}){'' if f.met else '  MISSED'}")


def sample_kb(stack: Offline, sample: Sample) -> str:
    """The sample's knowledge base, with the model and chunking Load sample uses, unless DATA_DIR has it."""
    s, kb = stack.settings, sample.kb_name
    if kb not in [k.name for k in stack.store.list_kbs()]:
        stack.store.create_kb(kb, chunk_size=s.chunk_size, chunk_overlap=s.chunk_overlap,
                              embedding_model=sample.embedding_model, analyser=sample.analyser)  # fmt: skip
        ingest(stack.store, kb, sample.uploads())
    return kb


def question_set(stack: Offline, kb: str) -> tuple[str, tuple[qs.EvalQuestion, ...], str]:
    """The set named `kb`, a sample's or a real document's (bench/real_docs.py's Debian Reference, made as a new
    user's knowledge base), with its knowledge base ready: (set name, questions, language)."""
    from bench import real_docs  # it imports this module

    if kb in real_docs.SETS:
        name, questions = real_docs.knowledge_base(stack, kb)
        return name, questions, real_docs.SETS[kb]
    sample = SAMPLES[kb]
    sample_kb(stack, sample)
    found = qs.sample_set(kb)
    return found.name, found.questions, sample.language
