"""Sidebar shown on every page: which Qdrant and which embedding model are in use."""

from __future__ import annotations

import streamlit as st

from core.embeddings import BUNDLED_DIMENSION, BUNDLED_MODEL
from core.errors import AppError
from core.models import BUNDLED_NAME
from ui import resources


def render_sidebar() -> None:
    with st.sidebar:
        st.subheader("Backends")
        try:
            s = resources.settings()
        except AppError as e:
            st.error(str(e))
            return
        st.caption(f"🗄️ {s.describe_qdrant()}")
        st.caption(f"🔤 Embeddings: {BUNDLED_MODEL} ({BUNDLED_DIMENSION} dims, bundled, CPU)")
        try:
            count = len(resources.store().list_kbs())
        except AppError as e:
            st.error(f"Qdrant: {e}")
        else:
            st.caption(f"✅ Qdrant ready · {count} knowledge base{'s' if count != 1 else ''}")
        st.caption(f"🧠 Chat: {BUNDLED_NAME} (embedded, llama.cpp)")
        if not s.ollama_host:
            st.caption("Ollama: off (OLLAMA_HOST=off)")
            return
        models, error = resources.available_models()
        if error:
            st.caption(f"⚪ Ollama not reachable at {s.ollama_host}: start it with `ollama serve`.")
        else:
            n = sum(m.backend == "ollama" for m in models)
            st.caption(f"✅ Ollama at {s.ollama_host} · {n} model{'s' if n != 1 else ''}")
