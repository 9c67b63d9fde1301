"""RAGTune Playground: entry point. Navigation over app_pages/, sidebar with backend status."""

from __future__ import annotations

import streamlit as st

from core.errors import AppError
from core.files import ensure_writable
from ui import resources
from ui.sidebar import render_sidebar
from ui.state import init_state, remember

st.set_page_config(page_title="RAGTune Playground", page_icon="🧪", layout="wide")
try:
    ensure_writable(resources.settings().data_dir)
except AppError as e:
    st.error(f"RAGTune cannot start: {e}")
    st.stop()
# Before any page: restore sticky choices (new session: from DATA_DIR), then keep what the last click changed.
prefs = resources.preferences()
init_state(st.session_state, prefs.load)
remember(st.session_state, prefs.update)
page = st.navigation(
    [
        st.Page("app_pages/home.py", title="Start", icon="🧪", default=True),
        st.Page("app_pages/documents.py", title="Documents", icon="📄"),
        st.Page("app_pages/retriever.py", title="Retriever", icon="🎛️"),
        st.Page("app_pages/compare.py", title="Compare", icon="⚖️"),
        st.Page("app_pages/prompts.py", title="Prompts", icon="📝"),
        st.Page("app_pages/finetune.py", title="Fine-tune", icon="🎯"),
        st.Page("app_pages/evaluate.py", title="Evaluate", icon="📊"),
    ]
)
render_sidebar()
page.run()
