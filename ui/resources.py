"""Shared, thread-safe resources, cached once per process with st.cache_resource."""

from __future__ import annotations

import streamlit as st

from core.config import Settings
from core.embeddings import EmbeddingModel, load_bundled
from core.store import Store


def settings() -> Settings:
    # Cheap, and read on every run so tests and restarts see the current environment.
    return Settings.from_env()


@st.cache_resource(show_spinner="Loading the embedding model…")
def embedder() -> EmbeddingModel:
    return load_bundled()


@st.cache_resource(show_spinner="Opening Qdrant…")
def _store(qdrant_url: str | None, local_path: str) -> Store:
    # Keyed by where the data lives, so each DATA_DIR/QDRANT_URL gets its own client.
    return Store.open(settings(), embedder())


def store() -> Store:
    """The Store for the current settings (raises AppError, which pages show)."""
    s = settings()
    return _store(s.qdrant_url, str(s.local_qdrant_path.resolve()))
