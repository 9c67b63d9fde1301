from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Each pytest-xdist worker gets its share of the cores for llama.cpp, torch and OpenMP (core.config.cpu_threads),
# set before any of them loads; the app and bench processes the tests start inherit it. llama.cpp's threads
# spin while they wait for each other: two workers each taking every core slowed the suite far more than half
# (the tiny benches: 152 s alone, 420 s beside the other worker).
if (_workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))) > 1 and "RAGTUNE_THREADS" not in os.environ:
    _share = str(max(1, len(os.sched_getaffinity(0)) // _workers))
    os.environ["RAGTUNE_THREADS"] = _share
    os.environ.setdefault("OMP_NUM_THREADS", _share)

from core.config import Settings  # noqa: E402
from core.embeddings import EmbeddingModel, load_bundled  # noqa: E402
from core.ingest import ingest  # noqa: E402
from core.samples import SAMPLE_KB_NAME, sample_uploads  # noqa: E402
from core.store import Store  # noqa: E402
from tests.helpers import CountingEmbeddings  # noqa: E402

_names = itertools.count()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own DATA_DIR and the embedded defaults, whatever the shell has set.

    Ollama is off: a test never reaches a real server on the developer's machine (unset would mean
    localhost:11434). Ollama tests pass the address of their pytest-httpserver explicitly.
    """
    for name in ("QDRANT_URL", "QDRANT_PATH", "QDRANT_API_KEY", "RAGTUNE_MAX_UPLOAD_MB", "OLLAMA_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OLLAMA_HOST", "off")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture(scope="session")
def gemma_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DATA_DIR holding the assembled Gemma 3 270M GGUF, made once per session (253 MB, about a second)."""
    from core.gemma import ensure_gemma

    root = tmp_path_factory.mktemp("gemma") / "data"
    ensure_gemma(root)
    return root


@pytest.fixture(scope="session")
def minilm() -> EmbeddingModel:
    """The real bundled MiniLM, loaded once per test session."""
    return load_bundled()


@pytest.fixture
def counting(minilm: EmbeddingModel) -> EmbeddingModel:
    """MiniLM behind a wrapper that counts embedded texts (`.embeddings.documents_embedded`)."""
    return EmbeddingModel(
        name=minilm.name,
        dimension=minilm.dimension,
        embeddings=CountingEmbeddings(minilm.embeddings),
        max_tokens=minilm.max_tokens,
    )


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture
def store(settings: Settings, counting: EmbeddingModel) -> Iterator[Store]:
    """Qdrant local mode in the test's temp DATA_DIR, with the real (counted) MiniLM."""
    s = Store.open(settings, counting)
    yield s
    s.close()


@pytest.fixture
def kb(store: Store, settings: Settings) -> str:
    """A fresh, empty knowledge base."""
    name = f"kb-{next(_names)}"
    store.create_kb(name, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    return name


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory: pytest.TempPathFactory, minilm: EmbeddingModel) -> Path:
    """A DATA_DIR holding only the sample knowledge base (800/120, MiniLM), ingested once per test session.

    Tests take it through `sample_kb`, which copies it: embedding the sample's documents again for each
    test cost seconds apiece and tested nothing new (tests/test_samples.py and the Documents page's
    Load sample test ingest it themselves).
    """
    root = tmp_path_factory.mktemp("sample") / "data"
    # Explicit, not the shell's: session fixtures run before the autouse `data_dir` clears the environment.
    settings = Settings.from_env(data_dir=root, qdrant_url=None, qdrant_path=None, ollama_host=None)
    with Store.open(settings, minilm) as store:
        store.create_kb(SAMPLE_KB_NAME, chunk_size=800, chunk_overlap=120)
        ingest(store, SAMPLE_KB_NAME, sample_uploads())
    return root


@pytest.fixture
def sample_kb(data_dir: Path, sample_data: Path) -> str:
    """The sample knowledge base in this test's own DATA_DIR (a copy of `sample_data`, so a test may change it)."""
    shutil.copytree(sample_data, data_dir, dirs_exist_ok=True)
    return SAMPLE_KB_NAME
