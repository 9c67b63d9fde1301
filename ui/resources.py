"""Shared, thread-safe resources, cached once per process with st.cache_resource.

Each is keyed by where its data lives, so tests (and restarts) with another DATA_DIR or
QDRANT_URL get their own.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import streamlit as st

from core import adapters
from core.config import OpenAIServer, Settings
from core.embeddings import EmbeddingCatalog, EmbeddingModel, load_bundled, ollama_embedding_models
from core.engine import EmbeddedEngine
from core.errors import AdapterError, AppError, ModelUnavailableError
from core.lab.board import JobBoard
from core.lab.registration import RegistrationJob, start_registration
from core.models import ModelCatalog, ModelInfo, embedded_models
from core.preferences import Preferences
from core.records import Records
from core.servers.ollama import OllamaServer
from core.servers.openai import OpenAIBackend
from core.store import Store
from core.strategies import Runtime
from core.template_library import TemplateLibrary


def settings() -> Settings:
    # Cheap, and read on every run so tests and restarts see the current environment.
    return Settings.from_env()


@st.cache_resource(show_spinner="Loading the embedding model…")
def embedder() -> EmbeddingModel:
    return load_bundled()


@st.cache_resource(show_spinner="Opening Qdrant…")
def _store(qdrant_url: str | None, local_path: str, data_dir: str) -> Store:
    # Knowledge bases built with another model (multilingual E5, Ollama's) load it by the name they record.
    # Tuned ones (core.embedding_tuner) are found under DATA_DIR.
    s = settings()
    catalog = EmbeddingCatalog(ollama_host=s.ollama_host, data_dir=s.data_dir, preloaded=[embedder()])
    return Store.open(s, embedder(), catalog)


def store() -> Store:
    """The Store for the current settings (raises AppError, which pages show)."""
    s = settings()
    return _store(s.qdrant_url, str(s.local_qdrant_path.resolve()), str(s.data_dir.resolve()))


@st.cache_resource
def engine() -> EmbeddedEngine:
    """llama.cpp models, loaded once per process and shared by every session (one lock each)."""
    return EmbeddedEngine()


@st.cache_resource
def _templates(root: str) -> TemplateLibrary:
    from pathlib import Path

    return TemplateLibrary(Path(root))


def templates() -> TemplateLibrary:
    return _templates(str((settings().data_dir / "templates").resolve()))


@st.cache_resource
def _records(path: str) -> Records:
    from pathlib import Path

    return Records(Path(path))


def records() -> Records:
    return _records(str((settings().data_dir / "records.sqlite").resolve()))


def preferences() -> Preferences:
    """Sticky choices (knowledge base, Compare settings) kept in DATA_DIR across refreshes."""
    return Preferences(settings().data_dir / "preferences.json")


@st.cache_resource
def _server_backend(name: str, base_url: str, api_key: str | None) -> OpenAIBackend:
    """One client per OpenAI-compatible server for the process: its connections and chat models are reused."""
    return OpenAIBackend(OpenAIServer(name, base_url, api_key))


def catalog() -> ModelCatalog:
    s = settings()
    servers = [_server_backend(server.name, server.base_url, server.api_key) for server in s.openai_servers]
    return ModelCatalog(s, engine(), OllamaServer(s.ollama_host) if s.ollama_host else None, servers)


@st.cache_data(ttl=15, show_spinner=False)
def _available(
    data_dir: str, ollama_host: str | None, servers: tuple[tuple[str, str], ...]
) -> tuple[list[ModelInfo], str | None, dict[str, str]]:
    models = catalog()
    return models.available(), models.ollama_error, models.server_errors


def _available_now() -> tuple[list[ModelInfo], str | None, dict[str, str]]:
    s = settings()
    servers = tuple((server.name, server.base_url) for server in s.openai_servers)
    return _available(str(s.data_dir.resolve()), s.ollama_host, servers)


def available_models() -> tuple[list[ModelInfo], str | None]:
    """Models for pickers, and why Ollama is missing from them (re-checked every 15 s)."""
    models, ollama_error, _ = _available_now()
    return models, ollama_error


@st.cache_data(ttl=30, show_spinner=False)
def _adapter_loaders(servers: tuple[tuple[str, str], ...]) -> list[str]:
    answering = catalog().servers
    return [name for name, _ in servers if name in answering and answering[name].can_load_adapters()]


def adapter_loaders() -> list[str]:
    """The OpenAI-compatible servers that load LoRA adapters at run time (vLLM's /v1/load_lora_adapter answers)."""
    errors = server_errors()
    servers = tuple((s.name, s.base_url) for s in settings().openai_servers if s.name not in errors)
    return _adapter_loaders(servers) if servers else []


def load_adapter_into(server: str, name: str, path: str) -> str:
    """Ask that server to load the PEFT folder at `path` as model `name`; its answer."""
    backend = catalog().servers[server]
    said = backend.load_adapter(name, path)
    _available.clear()
    return said


def server_errors() -> dict[str, str]:
    """Why each OpenAI-compatible server that did not answer is missing from the pickers (name -> reason)."""
    return _available_now()[2]


@st.cache_data(ttl=15, show_spinner=False)
def _ollama_embeddings(ollama_host: str) -> tuple[list[str], str | None]:
    try:
        return ollama_embedding_models(ollama_host), None
    except AppError as e:
        return [], str(e)


def ollama_embeddings() -> tuple[list[str], str | None]:
    """The Ollama server's embedding models (`ollama:<name>`), and why none could be listed (re-checked every 15 s)."""
    host = settings().ollama_host
    return _ollama_embeddings(host) if host else ([], None)


def runtime() -> Runtime:
    """Strategies run against this; the store is None (retrieval refused) when Qdrant is unavailable."""
    try:
        current_store: Store | None = store()
    except AppError:
        current_store = None
    return Runtime(current_store, templates(), catalog(), records())


def models_changed() -> None:
    """A model was trained or deleted: pickers list models afresh on their next run."""
    _available.clear()


@st.cache_resource
def jobs() -> JobBoard:
    """The heavy jobs of this process (training, registration, evaluations, rounds): one at a time, for all."""
    return JobBoard()


def base_models() -> list[ModelInfo]:
    """The models fine-tuning can start from: the embedded bases (SmolLM2, Gemma 3 270M) and DATA_DIR's GGUFs."""
    return [m for m in embedded_models(settings()) if not m.fine_tuned]


def base_file(adapter: adapters.Adapter) -> Path | None:
    """The GGUF an adapter was trained on, as the catalog pairs them; None when it is gone."""
    return next((m.path for m in embedded_models(settings()) if m.adapter == adapter.path), None)


def register_with_ollama(name: str) -> RegistrationJob:
    """Start uploading a fine-tuned model to Ollama and creating it there, in the background."""
    s = settings()
    if not s.ollama_host:
        raise ModelUnavailableError("Ollama is off (OLLAMA_HOST=off); set OLLAMA_HOST to register models with it.")
    adapter = adapters.get_adapter(s.data_dir, name)
    tuned = next((m for m in embedded_models(s) if m.adapter == adapter.path), None)
    if tuned is None or tuned.path is None:
        raise AdapterError(f"The base model of {name} is gone; it cannot be registered.")
    base = replace(tuned, adapter=None)  # the base as loaded for the base model's own answers
    chat_template = engine().get(base).chat_template
    return start_registration(jobs(), adapter, tuned.path, chat_template, s.ollama_host, data_dir=s.data_dir)
