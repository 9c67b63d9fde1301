"""RAGTune Playground: entry point. Navigation over app_pages/, sidebar with backend status."""

from __future__ import annotations

import streamlit as st

from ui.sidebar import render_sidebar

st.set_page_config(page_title="RAGTune Playground", page_icon="🧪", layout="wide")
page = st.navigation(
    [
        st.Page("app_pages/documents.py", title="Documents", icon="📄", default=True),
        st.Page("app_pages/compare.py", title="Compare", icon="⚖️"),
        st.Page("app_pages/prompts.py", title="Prompts", icon="📝"),
        st.Page("app_pages/finetune.py", title="Fine-tune", icon="🎯"),
    ]
)
render_sidebar()
page.run()
