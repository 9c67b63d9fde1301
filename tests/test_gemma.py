"""Gemma 3 270M, the second embedded base: assembled into DATA_DIR, listed, asked in completion form (real model)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import gemma
from core.config import Settings
from core.engine import EmbeddedEngine, LlamaCppChat, LoadedModel
from core.errors import ModelError
from core.ingest import Upload, ingest
from core.models import CHINESE_BASE, ModelCatalog, embedded_models
from core.records import Records
from core.store import Store
from core.strategies import RAG_TEMPLATE, Runtime, Strategy, presets, reads_chinese
from core.template_library import TemplateLibrary

GEMMA = f"llama.cpp:{gemma.GEMMA_NAME}"
HANDBOOK = "入职满一年的员工每年享有十五天带薪年假。年假须提前两周申请。差旅费用须在出差结束后三十天内提交报销单。"


@pytest.fixture(scope="session")
def gemma_catalog(gemma_dir: Path) -> ModelCatalog:
    """One catalog and engine for the session: Gemma is loaded once and shared by the tests."""
    return ModelCatalog(Settings.from_env(data_dir=gemma_dir, ollama_host=None), EmbeddedEngine(), None)


@pytest.fixture(scope="session")
def loaded(gemma_catalog: ModelCatalog) -> LoadedModel:
    return gemma_catalog.load(gemma_catalog.info(GEMMA))


def test_gemma_is_listed_beside_smollm2_without_assembling_it(data_dir: Path) -> None:
    models = embedded_models(Settings.from_env())
    ids = [m.id for m in models]
    assert ids[:2] == ["llama.cpp:SmolLM2-135M-Instruct", GEMMA]
    info = models[1]
    assert info.completion and info.path == gemma.gemma_path(data_dir)
    assert not info.path.exists()  # listing a picker assembles nothing
    assert CHINESE_BASE == gemma.GEMMA_NAME


@pytest.mark.slow
def test_it_is_assembled_once_with_the_packages_sha256(gemma_dir: Path) -> None:
    path = gemma.gemma_path(gemma_dir)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == gemma._package().EXPECTED_SHA256
    assert path.stat().st_size > 250_000_000
    before = path.stat().st_mtime_ns
    assert gemma.ensure_gemma(gemma_dir) == path and path.stat().st_mtime_ns == before  # not assembled again
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_a_damaged_chunk_is_refused_and_leaves_nothing(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = gemma._package()
    parts = []
    for n in range(2):
        part = data_dir.parent / f"part{n}"
        part.write_bytes(b"not the model " * 1000)
        parts.append(part)
    monkeypatch.setattr(package, "chunk_paths", lambda: parts)
    with pytest.raises(ModelError, match="SHA-256 .* a chunk package is damaged"):
        gemma.ensure_gemma(data_dir)
    folder = gemma.gemma_path(data_dir).parent
    assert folder.is_dir() and list(folder.iterdir()) == []
    parts[1].unlink()
    with pytest.raises(ModelError, match="chunk file.*missing: part1; run `make run`"):
        gemma.ensure_gemma(data_dir)


@pytest.mark.slow
def test_a_chinese_knowledge_base_defaults_to_gemma_which_answers_in_completion_form(
    store: Store, kb: str, data_dir: Path, gemma_catalog: ModelCatalog
) -> None:
    ingest(store, kb, [Upload("手册.txt", HANDBOOK.encode())])
    assert reads_chinese(store, kb) and not reads_chinese(store, None)
    catalog = embedded_models(Settings.from_env())
    assert presets(catalog, kb, chinese=True)["RAG"].strategy.model == GEMMA
    assert presets(catalog, kb)["RAG"].strategy.model.endswith("SmolLM2-135M-Instruct")
    runtime = Runtime(store, TemplateLibrary(data_dir / "templates"), gemma_catalog, Records(data_dir / "r.sqlite"))
    strategy = Strategy("RAG", GEMMA, RAG_TEMPLATE, retrieval=True, kb=kb, top_k=1, max_tokens=24)
    reply = runtime.run(strategy, "员工每年有多少天带薪年假？")
    deltas, answer = list(reply), reply.answer()
    assert answer.error is None and deltas
    assert answer.prompt.startswith("文本：") and answer.prompt.endswith("问题：员工每年有多少天带薪年假？\n答案：")
    assert ("十五天" in answer.text or "15天" in answer.text) and "\n" not in answer.text  # its answer's line
    assert answer.prompt_tokens and answer.completion_tokens and answer.ttft_s is not None


@pytest.mark.slow
def test_it_streams_and_a_closed_stream_frees_it(loaded: LoadedModel) -> None:
    assert loaded.completion
    prompt = [("user", "Question: Count from one to forty in words.\nAnswer:")]
    stream: Iterator = LlamaCppChat(loaded=loaded, model_id=GEMMA, max_tokens=64).stream(prompt)
    pieces = [str(next(stream).content) for _ in range(4)]
    assert sum(bool(p) for p in pieces) >= 2  # token by token, not one block at the end
    stream.close()
    assert loaded.lock.acquire(blocking=False), "the closed stream still holds the model"
    loaded.lock.release()
    again = LlamaCppChat(loaded=loaded, model_id=GEMMA, max_tokens=4).invoke(prompt)
    assert again.content and again.usage_metadata and again.usage_metadata["output_tokens"] <= 5
