"""Compare: one question, 2-4 strategies side by side, streaming, with sources and the exact prompt."""

from __future__ import annotations

import time

import streamlit as st

from core.errors import AppError
from core.rag_preset import load_rag_preset
from core.samples import SAMPLE_KB_NAME
from core.strategies import PRESET_ORDER, STOPPED, Answer, presets, reads_chinese, run_many
from ui import compare, components, resources
from ui.notices import chinese_model_notice
from ui.state import index_of, init_state, remembered
from ui.strategy_editor import COMPARE, strategy_editor

init_state(st.session_state)
state = st.session_state
st.title("⚖️ Compare strategies")
st.caption("Ask once; each column answers with its own strategy. Open a column's settings to change it.")
# Below ~1100 px four columns would wrap text letter by letter: columns wrap onto new rows instead,
# and a column that only holds a "not yet" note takes little room, its note in a smaller box.
components.wrapping_columns("compare-grid", "13.5rem", sized={"compare-placeholder-": "6.5rem"})
st.html(
    """<style>
[class*='st-key-compare-placeholder-'] [data-testid='stAlertContainer'] { padding: 0.5rem 0.6rem; }
[class*='st-key-compare-placeholder-'] [data-testid='stAlertContainer'] p { font-size: 0.875rem; }
</style>"""
)

runtime = resources.runtime()
models, ollama_error = resources.available_models()
try:
    kbs = [kb.name for kb in resources.store().list_kbs()]
except AppError as e:
    st.warning(f"Retrieval is unavailable, strategies without it still run: {e}")
    kbs = []
if ollama_error:
    st.caption(f"ℹ️ Ollama models unavailable: {ollama_error}")
# One knowledge base for every RAG column: the app's (the sidebar's, chosen here or on Documents).
kb = state["kb"] if state["kb"] in kbs else (kbs[0] if kbs else None)
if kbs:
    state["kb"] = kb
# Chinese questions and knowledge bases start on the embedded base that answers Chinese best.
chinese = reads_chinese(runtime.store, kb, [state.get("compare.question") or ""])
available = presets(models, kb, load_rag_preset(resources.settings().data_dir), chinese=chinese)


def reuse_question() -> None:
    if state["compare.history"]:
        state["compare.question"] = state["compare.history"]


def choose_kb() -> None:
    state["kb"] = state["compare.kb"]


with st.form("compare.ask_form", border=False, enter_to_submit=True):
    q_col, b_col = st.columns([6, 1], vertical_alignment="bottom")
    question = q_col.text_input(
        "Question",
        value=remembered(state, "compare.question", ""),
        key="compare.question",
        placeholder="How long is parental leave at full pay?"
        if kb == SAMPLE_KB_NAME
        else "A question your documents answer",
    )
    ask = b_col.form_submit_button("Ask", type="primary", key="compare.ask", width="stretch")
components.wrapping_columns("compare-choices", "6rem", sized={"compare-kb": "9rem", "compare-ncols": "4.5rem"})
h_col, k_col, n_col = st.container(key="compare-choices").columns([3, 2, 1], vertical_alignment="bottom")
history = runtime.records.recent_questions()
if history:
    h_col.selectbox("Or pick a past question", [""] + history, key="compare.history", on_change=reuse_question)
if kbs:
    if state.get("compare.kb") != kb:  # chosen on another page: a widget keeps what it shows unless set anew
        state["compare.kb"] = kb
    k_col.selectbox(
        "Knowledge base",
        kbs,
        key="compare.kb",
        on_change=choose_kb,
        help="What every RAG column searches: the knowledge base named in the sidebar, also chosen on Documents.",
    )
n = n_col.selectbox(
    "Columns", [2, 3, 4], index=index_of([2, 3, 4], remembered(state, "compare.ncols", 4)), key="compare.ncols"
)
if ask and not question.strip():
    st.warning("Type a question first.")
    ask = False

order = list(PRESET_ORDER)
widths = [
    1.7 if available[remembered(state, f"compare.col{i}.preset", order[i], order)].disabled_reason else 3
    for i in range(n)
]
notice_slot = st.empty()  # above the columns, filled once they have said which strategies run
stop_slot = st.empty()
columns = st.container(key="compare-grid").columns(widths, border=True)
template_names = runtime.templates.names()
strategies = {}
for i, col in enumerate(columns):
    with col:
        strategy = strategy_editor(COMPARE, i, available, models, template_names, kb)
        if strategy is not None:
            strategies[i] = strategy
if notice := chinese_model_notice(strategies.values(), [question], runtime.store, [m.id for m in models]):
    notice_slot.warning(notice, icon="🀄")

if ask and strategies:
    # Workers stream into queues; this thread alone draws, so each column fills as its tokens come.
    slots = {i: columns[i].empty() for i in strategies}
    for slot in slots.values():
        slot.caption("⏳ Waiting for the model (columns on the embedded model take turns)…")
    # Stop (or any other click) reruns the page, which closes run_many and stops the workers between
    # tokens; what had come so far is in the session state, kept below as stopped answers.
    stop_slot.button("⏹ Stop", key="compare.stop", help="Stop every column; what they wrote so far stays.")
    answers: dict[int, Answer] = {}
    partial = {i: Answer(question=question, strategy=s, error=STOPPED) for i, s in strategies.items()}
    state["compare.answers"], state["compare.partial"] = answers, partial
    started = time.perf_counter()
    for i, text, answer in run_many(runtime, list(strategies.items()), question):
        if answer is not None:
            answers[i] = answer
            partial.pop(i, None)
            slots[i].empty()
        else:
            partial[i].text += text
            partial[i].total_s = time.perf_counter() - started
            slots[i].markdown(compare.answer_markdown(partial[i].text, i, 0) + " ▌")
    stop_slot.empty()
    state["compare.partial"] = {}
elif state["compare.partial"]:  # stopped midway: the columns that had not finished keep what they wrote
    state["compare.answers"] = {**state["compare.answers"], **state["compare.partial"]}
    state["compare.partial"] = {}

shown = {i: a for i, a in state["compare.answers"].items() if i in strategies and a.strategy.name == strategies[i].name}
earlier = next((a.question for a in shown.values() if a.question != question), None)
if earlier:
    st.info(f"Showing the answers to an earlier question: “{earlier}”. Press Ask for the new one.")
for i, answer in shown.items():
    with columns[i]:
        compare.render_answer(i, answer)
