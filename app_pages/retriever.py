"""Train the retriever: the embedding model tuned on questions generated from a knowledge base, before/after."""

from __future__ import annotations

import streamlit as st

from core import embedding_tuner as tuner
from core.embeddings import BUNDLED_MODEL
from core.errors import AppError
from core.evaluation.questions import QuestionSet, list_sets, sample_set
from core.samples import SAMPLES
from ui import components, resources
from ui import retriever as ui_retriever
from ui.state import index_of, init_state

init_state(st.session_state)
state = st.session_state
st.title("🎛️ Train the retriever")
st.caption(
    "Fine-tune the embedding model on questions generated from a knowledge base, each paired with the chunk it "
    "came from (the other chunks of a batch are the wrong answers), on this machine's CPU. The knowledge base is "
    "then re-embedded with the tuned model into a new one, and hit@k and MRR are measured before and after."
)
settings = resources.settings()
try:
    store = resources.store()
    kbs = {kb.name: kb for kb in store.list_kbs()}
except AppError as e:
    st.error(str(e))
    st.stop()
trainable = [n for n, kb in kbs.items() if tuner.is_trainable(kb.embedding_model)]
if not trainable:
    st.info(
        f"No knowledge base here can be trained: only those embedded with {BUNDLED_MODEL} (or a model tuned from it) "
        "can. Create one on **Documents**, or load the English sample."
    )
    st.stop()
kb_name = st.selectbox("Knowledge base", trainable, index=index_of(trainable, state["kb"]), key="retriever.kb")
kb = kbs[kb_name]
docs = {d.filename for d in store.list_documents(kb_name)}
if not docs:
    st.info(f"{kb_name} has no documents yet: add some on **Documents**.")
    st.stop()

# Question sets whose expected sources are documents of this knowledge base.
sets: list[QuestionSet] = [sample_set(s.kb_name) for s in SAMPLES.values()] + list_sets(settings.data_dir)
usable = {qs.name: qs for qs in sets if docs & {q.source for q in qs.questions if q.source}}
if not usable:
    st.info(
        f"No question set names documents of {kb_name}, so hits cannot be counted. Upload one with a `source` "
        "column (the file name) on **Evaluate**."
    )
    st.stop()

pairs = tuner.pseudo_labels(store, kb_name, limit=400)
with st.expander(f"Training pairs: {len(pairs)} generated questions, each with the chunk it came from"):
    st.dataframe([{"Question": p.question, "Chunk": p.chunk} for p in pairs[:200]], hide_index=True)

left, right = st.columns(2)
qs_name = left.selectbox("Question set to measure on", list(usable), key="retriever.set")
modes = list(kb.modes)
mode = left.selectbox(
    "Search mode for measuring", modes, index=index_of(modes, kb.mode_for(None)), key="retriever.mode"
)
name = right.text_input("Name of the tuned model and knowledge base", f"{kb_name[:36]}-tuned", key="retriever.name")
iterative = right.toggle("Iterative (rounds)", key="retriever.iterative", help=ui_retriever.ITERATIVE_HELP)
rounds = right.slider("Round limit", 2, 6, 3, key="retriever.rounds") if iterative else 1
per_round = left.number_input("Pairs per round", 2, 400, min(64, max(len(pairs), 2)), 2, key="retriever.per_round")
epochs = right.number_input("Epochs", 1, 5, 1, key="retriever.epochs")
st.caption(ui_retriever.ITERATIVE_HELP if iterative else "One round: train once on the first batch of pairs.")
st.caption(
    f"Saved as `tuned:{tuner.round_name(name, 1)}`… under DATA_DIR, with a knowledge base of the same name. "
    "The question set also decides when the rounds stop, so its 'after' figure is a little optimistic: check on "
    "another set."
)

if st.button("Train", type="primary", key="retriever.train", disabled=len(pairs) < 2):
    st.button("Stop", key="retriever.stop", help="Stops and deletes what this training made.")
    chart = st.empty()

    def on_round(so_far: tuner.TuneResult) -> None:
        with chart.container():
            ui_retriever.rounds_chart(so_far.before, so_far.rounds)

    try:
        result = tuner.tune(
            store,
            settings.data_dir,
            kb_name,
            name.strip(),
            pairs,
            usable[qs_name].questions,
            rounds=rounds,
            pairs_per_round=int(per_round),
            epochs=int(epochs),
            mode=mode,
            progress=components.progress_callback("Training the retriever…"),
            on_round=on_round,
        )
    except AppError as e:
        st.error(str(e))
    else:
        state["retriever.result"] = (kb_name, qs_name, result)
        st.rerun()

if state["retriever.result"] is not None:
    source, qs_name, result = state["retriever.result"]
    st.subheader(f"`{source}` before and after training, measured on `{qs_name}`")
    ui_retriever.scores_table(result)
    ui_retriever.rounds_chart(result.before, result.rounds)
    if result.kept is not None:
        st.success(
            f"Kept round {result.kept.number}: knowledge base `{result.kept.kb}`, embedded with "
            f"`{result.kept.model}` (listed with the embedding models on Documents). {result.stopped}"
        )
        if st.button(f"Use {result.kept.kb} on every page", key="retriever.use"):
            state["kb"] = result.kept.kb
            st.rerun()
