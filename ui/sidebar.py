"""Sidebar shown on every page: which Qdrant, and how the chosen knowledge base is embedded and searched."""

from __future__ import annotations

import streamlit as st

from core.config import OpenAIServer
from core.embeddings import BUNDLED_DIMENSION, BUNDLED_MODEL
from core.errors import AppError
from core.models import BUNDLED_NAME, ModelInfo
from core.sparse import ANALYSERS
from core.store import KnowledgeBase
from ui import resources


def describe_kb(kb: KnowledgeBase) -> str:
    """One line: the knowledge base, its embedding model, keyword analyser and search mode.

    Names go in code spans (neither can hold a backtick), so an underscore in one is not emphasis.
    """
    analyser = ANALYSERS.get(kb.analyser or "", "none (dense only)")
    return (
        f"📚 `{kb.name}`: embeddings `{kb.embedding_model}` ({kb.dimension} dims) · keywords: {analyser} · "
        f"search: {kb.mode_for(None)}"
    )


def render_sidebar() -> None:
    with st.sidebar:
        st.subheader("Backends")
        try:
            s = resources.settings()
        except AppError as e:
            st.error(str(e))
            return
        st.caption(f"🗄️ {s.describe_qdrant()}")
        st.caption(f"🔤 Embeddings: {BUNDLED_MODEL} ({BUNDLED_DIMENSION} dims, bundled, CPU) by default")
        try:
            kbs = {kb.name: kb for kb in resources.store().list_kbs()}
        except AppError as e:
            st.error(f"Qdrant: {e}")
        else:
            st.caption(f"✅ Qdrant ready · {len(kbs)} knowledge base{'s' if len(kbs) != 1 else ''}")
            if kbs and st.session_state.get("kb") not in kbs:  # what every page falls back to, named here first
                st.session_state["kb"] = next(iter(kbs))
            chosen = kbs.get(st.session_state.get("kb") or "")
            if chosen is not None:
                st.caption(describe_kb(chosen))
        models, error = resources.available_models()
        bundled = [m.id.removeprefix("llama.cpp:") for m in models if "(embedded" in m.label]  # not GGUF files
        st.caption(f"🧠 Chat: {' and '.join(bundled) or BUNDLED_NAME} (embedded, llama.cpp)")
        if not s.ollama_host:
            st.caption("Ollama: off (OLLAMA_HOST=off)")
        elif error:
            st.caption(f"⚪ Ollama not reachable at {s.ollama_host}: start it with `ollama serve`.")
        else:
            n = sum(m.backend == "ollama" for m in models)
            st.caption(f"✅ Ollama at {s.ollama_host} · {n} model{'s' if n != 1 else ''}")
        render_servers(s.openai_servers, models, resources.server_errors())


def render_servers(servers: tuple[OpenAIServer, ...], models: list[ModelInfo], errors: dict[str, str]) -> None:
    """One line per OpenAI-compatible server: its address and whether it answers."""
    if not servers:
        st.caption("OpenAI-compatible servers: none (set OPENAI_BASE_URL to add one)")
    for server in servers:
        if server.name in errors:
            st.caption(f"⚪ `{server.name}` at {server.base_url} not answering: its models are hidden.")
        else:
            n = sum(m.server == server.name for m in models)
            models_n = f"{n} model{'s' if n != 1 else ''}"
            st.caption(f"✅ `{server.name}` at {server.base_url} (OpenAI-compatible) · {models_n}")
