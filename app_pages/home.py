"""Start: what the lab is for, the four strategies, the path through it, and the next step for this data."""

from __future__ import annotations

import streamlit as st

from core import adapters
from core.errors import AppError
from ui import components, resources
from ui.state import init_state

init_state(st.session_state)
st.title("🧪 RAGTune Playground")
st.markdown(
    "Building a knowledge-base assistant? Find out **on your own documents** which way serves it best: "
    "prompt engineering, retrieval (RAG), fine-tuning, or fine-tuning + RAG, measured side by side on this machine."
)

components.wrapping_columns("home-strategies", "11rem")  # two by two on a narrow window, never "engineeri ng"
strategies = st.container(key="home-strategies").columns(4, border=True)
for col, (title, text) in zip(
    strategies,
    [
        (
            "✍️ Prompt engineering",
            "The base model with a system prompt and a few examples. Cheapest; adds no knowledge.",
        ),
        ("📚 RAG", "Retrieved passages from your documents go into the prompt. Fresh knowledge, answers cite sources."),
        (
            "🎯 Fine-tuning",
            "A LoRA adapter trained on your facts answers from its weights. Costs training; may forget.",
        ),
        (
            "🎯📚 Fine-tuning + RAG",
            "Both: a tuned model that also reads retrieved passages. Both costs, often the best.",
        ),
    ],
    strict=True,
):
    col.markdown(f"**{title}**")
    col.caption(text)

settings = resources.settings()
try:
    n_kbs = len(resources.store().list_kbs())
except AppError as e:
    st.error(str(e))
    n_kbs = 0
n_tuned = len(adapters.list_adapters(settings.data_dir))
n_runs = len(resources.records().runs())
n_asked = len(resources.records().recent_questions(limit=100))

st.subheader("The path")
steps = [
    ("app_pages/documents.py", "1 · Add documents", "📄", n_kbs > 0, f"{n_kbs} knowledge base(s)"),
    (
        "app_pages/compare.py",
        "2 · Compare answers",
        "⚖️",
        n_asked > 0,
        f"{n_asked} question(s) asked" if n_asked else "ask one question, see every strategy",
    ),  # fmt: skip
    ("app_pages/finetune.py", "3 · Fine-tune", "🎯", n_tuned > 0, f"{n_tuned} fine-tuned model(s)"),
    ("app_pages/evaluate.py", "4 · Evaluate and choose", "📊", n_runs > 0, f"{n_runs} evaluation run(s)"),
]
first_open = next((i for i, step in enumerate(steps) if not step[3]), None)
for i, (page, label, icon, done, detail) in enumerate(steps):
    mark = "✅" if done else ("➡️" if i == first_open else "⬜")  # the arrow on the first step still open
    st.page_link(page, label=f"{mark} {label}: {detail}", icon=icon)

st.subheader("Next step")
if n_kbs == 0:
    st.info(
        "You have no knowledge base yet. Open **Documents** and upload your PDFs (scanned ones too), Word files, "
        "web pages, Markdown or text files, "
        "or press **📦 Load sample** to try a fictional company's handbook with 40 questions."
    )
    st.page_link("app_pages/documents.py", label="Go to Documents", icon="📄")
elif n_tuned == 0:
    st.info(
        "Your documents are searchable. Ask a question in **Compare** to see PE and RAG side by side, then "
        "train a model on your facts in **Fine-tune** (two to three minutes on the sample facts, on 2 cores) to add "
        "FT and FT+RAG."
    )
    st.page_link("app_pages/compare.py", label="Go to Compare", icon="⚖️")
    st.page_link("app_pages/finetune.py", label="Go to Fine-tune", icon="🎯")
elif n_runs == 0:
    st.info(
        "You have documents and a fine-tuned model. Measure all four strategies on your own questions in "
        "**Evaluate** (or the sample's 40) and read which one it recommends, and why."
    )
    st.page_link("app_pages/evaluate.py", label="Go to Evaluate", icon="📊")
else:
    st.info(
        "Everything is in place. Open **Evaluate** for the latest run and its recommendation; after you edit "
        "documents or retrain, run it again and compare the runs."
    )
    st.page_link("app_pages/evaluate.py", label="Go to Evaluate", icon="📊")
