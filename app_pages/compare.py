"""Compare: one question, 2-4 strategies side by side, streaming, with sources and the exact prompt."""

from __future__ import annotations

import streamlit as st

from core.errors import AppError
from core.strategies import Answer, presets, run_many
from ui import compare, resources
from ui.state import init_state

init_state(st.session_state)
st.title("⚖️ Compare strategies")
st.caption("Ask once; each column answers with its own strategy. Open a column's settings to change it.")

runtime = resources.runtime()
models, ollama_error = resources.available_models()
try:
    kbs = [kb.name for kb in resources.store().list_kbs()]
except AppError as e:
    st.warning(f"Retrieval is unavailable, strategies without it still run: {e}")
    kbs = []
if ollama_error:
    st.caption(f"ℹ️ Ollama models unavailable: {ollama_error}")
current_kb = st.session_state.get("documents.kb")
kb = current_kb if current_kb in kbs else (kbs[0] if kbs else None)
available = presets(models, kb)


def reuse_question() -> None:
    if st.session_state["compare.history"]:
        st.session_state["compare.question"] = st.session_state["compare.history"]


q_col, n_col = st.columns([5, 1], vertical_alignment="bottom")
question = q_col.text_input("Question", key="compare.question", placeholder="How long is parental leave at full pay?")
n = n_col.selectbox("Columns", [2, 3, 4], key="compare.ncols")
history = runtime.records.recent_questions()
if history:
    st.selectbox("Or pick a past question", [""] + history, key="compare.history", on_change=reuse_question)
ask = st.button("Ask", type="primary", key="compare.ask", disabled=not question.strip())

columns = st.columns(n, border=True)
template_names = runtime.templates.names()
strategies = {}
for i, col in enumerate(columns):
    with col:
        strategy = compare.column_settings(i, available, models, template_names, kbs)
        if strategy is not None:
            strategies[i] = strategy

if ask and strategies:
    # Workers stream into queues; this thread alone draws, so each column fills as its tokens come.
    slots = {i: columns[i].empty() for i in strategies}
    texts = dict.fromkeys(strategies, "")
    answers: dict[int, Answer] = {}
    for i, item in run_many(runtime, list(strategies.items()), question):
        if isinstance(item, Answer):
            answers[i] = item
            slots[i].empty()
        else:
            texts[i] += item
            slots[i].markdown(compare.answer_markdown(texts[i], i, 0) + " ▌")
    st.session_state["compare.answers"] = answers

shown = {
    i: a
    for i, a in st.session_state["compare.answers"].items()
    if i in strategies and a.strategy.name == strategies[i].name
}
earlier = next((a.question for a in shown.values() if a.question != question), None)
if earlier:
    st.info(f"Showing the answers to an earlier question: “{earlier}”. Press Ask for the new one.")
for i, answer in shown.items():
    with columns[i]:
        compare.render_answer(i, answer)
