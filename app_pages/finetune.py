"""Fine-tune: build a dataset, train a LoRA adapter in the background, then use it everywhere."""

from __future__ import annotations

import uuid
from dataclasses import asdict

import streamlit as st

from core import adapters
from core.errors import AppError
from core.finetune import datasets, generate, modes
from core.finetune.pipeline import TrainRequest
from core.lab.registration import RegistrationJob, latest_registration
from core.lab.rounds import MAX_ROUNDS, before_after, latest_loop
from core.lab.training import latest_training
from core.language import holds_chinese
from core.strategies import FT_TEMPLATE
from core.tables import RowIssue
from ui import finetune as ui_finetune
from ui import finetune_models, resources
from ui.state import init_state

init_state(st.session_state)
state = st.session_state
st.title("🎯 Fine-tune")
st.caption(
    "Teach the embedded model your facts with LoRA, on this machine. The new model then answers from its "
    "weights in Compare (FT), alone or with retrieval (FT+RAG)."
)
settings = resources.settings()
folder = settings.data_dir / "datasets"
jobs = resources.jobs()
listed = adapters.list_adapters(settings.data_dir)


def load(pairs: list[datasets.Pair], name: str, notice: str) -> None:
    state["finetune.pairs"] = [{"question": p.question, "answer": p.answer, "evidence": p.evidence} for p in pairs]
    state["finetune.name"] = name
    state["finetune.round"] += 1
    state["finetune.issues"] = []
    state["finetune.notice"] = notice
    state["finetune.notice_source"] = state.get("finetune.source")  # the notice is shown with its source only


# This tab's id: a run belongs to the tab that started it; another tab (or this one after a refresh)
# sees it and may stop it only after confirming.
session = state.setdefault("finetune.session", uuid.uuid4().hex)


def cancel(force: bool = False) -> None:
    job = latest_training(jobs, settings.data_dir)
    try:
        if job is not None:
            job.cancel(session, force=force)
    except AppError as e:
        state["finetune.error"] = str(e)


def delete(name: str) -> None:
    try:
        resources.catalog().delete_fine_tuned(name)
    except (AppError, OSError) as e:
        state["finetune.error"] = f"Could not delete {name}: {e}"
    else:
        state["finetune.notice"] = f"Deleted {name}."
    resources.models_changed()


def register(name: str) -> None:
    try:
        resources.register_with_ollama(name)
    except AppError as e:
        state["finetune.error"] = str(e)


st.subheader("1 · Dataset")
source = st.radio(
    "Source",
    ["Sample facts", "Saved dataset", "Upload JSONL/CSV", "From a knowledge base"],
    horizontal=True,
    key="finetune.source",
)
try:
    if source == "Sample facts":
        st.caption("40 questions about Brackenridge Tidal Systems, the sample company: no model knows them.")
        if st.button("Load the sample facts", key="finetune.load_sample"):
            load(generate.sample_pairs(), "sample-facts", "Loaded 40 sample facts.")
    elif source == "Saved dataset":
        names = datasets.list_datasets(folder)
        if not names:
            st.info("No saved dataset yet. Corrections from Compare's “Wrong answer” land here too.")
        chosen = st.selectbox("Dataset", names, key="finetune.saved") if names else None
        if chosen and st.button("Open", key="finetune.open"):
            parsed = datasets.load_pairs(folder, chosen)
            load(parsed.pairs, chosen, f"Opened {chosen}: {len(parsed.pairs)} pairs.")
            state["finetune.issues"] = [asdict(i) for i in parsed.issues]
    elif source == "Upload JSONL/CSV":
        st.caption('JSONL rows: `{"question": …, "answer": …}` or `{"messages": [system?, user, assistant]}`. CSV: '
                   "a header with `question` and `answer` columns.")  # fmt: skip
        upload = st.file_uploader("Pairs file", type=["jsonl", "csv"], key=f"finetune.upload{state['finetune.round']}")
        if upload is not None:
            parsed = datasets.parse_upload(upload.name, upload.getvalue())
            stem = upload.name.rsplit(".", 1)[0]
            if parsed.issues:
                st.warning(f"{len(parsed.issues)} problem(s) in {parsed.rows} rows; fix the file, or keep the rest.")
                ui_finetune.issues_table(parsed.issues)
            label = f"Use the {len(parsed.pairs)} valid pairs" if parsed.issues else f"Use {len(parsed.pairs)} pairs"
            if parsed.pairs and st.button(label, key="finetune.use_upload"):
                load(parsed.pairs, stem, f"Loaded {len(parsed.pairs)} pairs from {upload.name}.")
    else:
        kbs = [kb.name for kb in resources.store().list_kbs()]
        if not kbs:
            st.info("No knowledge base yet: add documents on the Documents page.")
        else:
            kb = st.selectbox("Knowledge base", kbs, key="finetune.kb")
            st.caption(generate.CHINESE_RULES if holds_chinese(resources.store(), kb) else generate.ENGLISH_RULES)
            if st.button("Generate pairs", key="finetune.generate"):
                hits = generate.kb_hits(resources.store(), kb)
                if pairs := generate.pairs_from_hits(hits):
                    load(pairs, f"{kb}-facts", f"Generated {len(pairs)} questions from {kb}; review them below.")
                else:  # said here, not kept: it belongs to this press of the button
                    st.warning(f"No questions from {kb}. {generate.no_pairs_reason(hits)}")
            writers = [m for m in resources.available_models()[0] if m.backend != "llama.cpp"]
            if writers:
                writer = st.selectbox("Or have a served model write them", [m.id for m in writers],
                                      format_func=lambda i: i.removeprefix("ollama:"),
                                      key="finetune.writer")  # fmt: skip
                if st.button(f"Write the questions with {writer.removeprefix('ollama:')}", key="finetune.write"):
                    bar = st.progress(0.0, text="Writing questions…")
                    pairs = generate.pairs_written_by(
                        resources.catalog(), writer, generate.kb_hits(resources.store(), kb),
                        progress=lambda done, total, text: bar.progress(done / max(total, 1), text=text),
                    )  # fmt: skip
                    name = writer.removeprefix("ollama:")
                    if pairs:
                        load(pairs, f"{kb}-questions", f"{name} wrote {len(pairs)} questions from {kb}; review below.")
                    else:  # as for the rules: said for this press, not kept as "wrote 0 questions"
                        st.warning(f"{name} wrote no usable question from {kb}: try another model or source.")
except AppError as e:
    st.error(str(e))

if state["finetune.notice_source"] not in (None, source):
    # "Generated 21 questions from kb" belongs to that source; once the picker shows another (chosen, or
    # reset by a visit to another page), it would name a source no longer on screen.
    state["finetune.notice"] = state["finetune.notice_source"] = None
if state["finetune.notice"]:
    st.info(state["finetune.notice"])
if state["finetune.error"]:
    st.error(state["finetune.error"])
    state["finetune.error"] = None
if state["finetune.issues"]:
    st.warning("Some saved rows were skipped:")
    ui_finetune.issues_table([RowIssue(**i) for i in state["finetune.issues"]])
running = (job := latest_training(jobs, settings.data_dir)) is not None and job.view().running
if not state["finetune.pairs"]:
    if not running:  # after a refresh during training, the running job below is what matters
        st.info("Load the sample facts, a saved dataset, an upload or generated pairs to start.")
else:
    pairs = ui_finetune.pair_editor(state["finetune.pairs"], key=f"finetune.editor{state['finetune.round']}")
    name_col, info_col = st.columns([2, 3], vertical_alignment="bottom")
    dataset = name_col.text_input("Dataset name", key="finetune.name")
    info_col.caption(f"{len(pairs)} pairs · version `{datasets.content_hash(pairs)}`")

    st.subheader("2 · Mode")
    try:
        kbs = [kb.name for kb in resources.store().list_kbs()]
    except AppError as e:
        st.error(str(e))
        kbs = []
    mode = ui_finetune.mode_picker(modes.default_mode(has_kb=bool(kbs)))
    joint, rounds = None, MAX_ROUNDS
    if mode != "ft_then_rag" and not kbs:
        st.info("This mode retrieves from a knowledge base: add documents on the Documents page first.")
    elif mode != "ft_then_rag":
        rag_templates = [n for n in resources.templates().names() if resources.templates().get(n).uses_context]
        joint = ui_finetune.joint_form(kbs, rag_templates)
        if mode == "iterative":
            rounds = int(st.number_input("Round limit", 1, 6, MAX_ROUNDS, key="finetune.rounds"))
        if mode in ("staged", "iterative"):
            st.caption(f"The {len(pairs)} pairs are the questions asked: RAG first, then FT+RAG with each new model.")

    st.subheader("3 · Settings")
    base = ui_finetune.base_picker(pairs)
    drawn = mode == "joint" and modes.drawn(pairs)  # Joint trains pairs drawn from a knowledge base for less long
    with st.expander("LoRA settings (the defaults suit this model and a few dozen facts)"):
        suffix = "" if mode == "ft_then_rag" else ".retrieval"  # the modes that train on RAG prompts share theirs
        suffix += ".completion" if base.completion else ""  # a base without a chat template has its own rate
        suffix += ".drawn" if drawn else ""
        defaults = modes.train_defaults(mode, completion=base.completion, drawn_pairs=drawn)
        train_settings = ui_finetune.settings_form(defaults, f"finetune.settings{suffix}")
    st.caption(ui_finetune.replay_note(train_settings, base.label))
    if drawn:
        st.caption(modes.DRAWN_EPOCHS_NOTE)
    count = len(listed) + 1
    model_name = st.text_input("New model name", value=f"{dataset or 'tuned'}-{count}".lower(), key="finetune.model")

    st.subheader("4 · Train")
    system = resources.templates().get(FT_TEMPLATE).system
    # Joint prompts are checked by the trainer against its longer limit for RAG prompts.
    too_long = []
    if mode == "ft_then_rag":
        too_long = ui_finetune.length_issues(pairs, system, train_settings.max_length, base)
    if too_long:
        st.warning("Shorten these rows or raise the maximum length in the settings:")
        ui_finetune.issues_table(too_long)
    busy_with = jobs.busy()  # training, an evaluation or rounds: one heavy job at a time
    if busy_with and not running:
        st.caption(f"⏳ {busy_with}")
    label = {"staged": "🚀 Evaluate, train, evaluate", "iterative": "🚀 Start the rounds"}.get(mode, "🚀 Train")
    needs_kb = mode != "ft_then_rag" and joint is None
    blocked = running or busy_with is not None or not pairs or bool(too_long) or needs_kb
    clicked = st.button(label, type="primary", key="finetune.train", disabled=blocked)
    confirmed = state.pop("finetune.replace_ok", False)
    if (clicked or confirmed) and datasets.save_would_replace(folder, dataset, pairs) and not confirmed:
        st.warning(f"A saved dataset named {dataset} holds other pairs: replace it with these {len(pairs)}, "
                   "or give this one another name above.")  # fmt: skip
        st.button(
            "Replace it and train",
            key="finetune.replace",
            on_click=state.__setitem__,
            args=("finetune.replace_ok", True),
        )
    elif clicked or confirmed:
        try:
            datasets.save_pairs(folder, dataset, pairs, replace=True)
            base_file = resources.catalog().model_file(base)  # Gemma's GGUF assembled on first use
            request = TrainRequest(
                model_name, dataset, tuple(pairs), base_file, base.label, train_settings, system, settings.ollama_host
            )
            ui_finetune.start_run(mode, request, joint, rounds, session)
            state["finetune.notice"] = None
        except AppError as e:
            st.error(str(e))


@st.fragment(run_every=1.0)
def progress() -> None:
    job = latest_training(jobs, settings.data_dir)
    if job is None:
        return
    view = job.view()
    st.caption(f"**{view.request.name}** on {view.request.dataset} ({len(view.request.pairs)} pairs)")
    ui_finetune.job_panel(view, cancel, mine=job.is_owner(session))
    if not view.running and state.get("finetune.seen") != view.request.name:
        state["finetune.seen"] = view.request.name
        resources.models_changed()
        st.rerun()  # the whole page: the new model's card appears below


@st.fragment(run_every=1.0)
def registration(job: RegistrationJob) -> None:
    view = job.view()
    if not view.done:
        st.progress(view.fraction, text=f"🦙 {view.message}")
        return
    state["finetune.registration_seen"] = view.started
    if view.error:
        state["finetune.error"] = f"🦙 {job.adapter.name} is not in Ollama: {view.error}"
    else:
        state["finetune.notice"] = f"🦙 {job.adapter.name}: {view.message}"
    resources.models_changed()
    st.rerun()


@st.fragment(run_every=1.0)
def loop_progress() -> None:
    job = latest_loop(jobs, settings.data_dir)
    if job is None:
        return
    view = job.view()
    st.caption(f"**{view.request.name}**: {modes.MODES[view.request.mode][0]} on {view.request.question_set}")
    ui_finetune.loop_panel(view, job.cancel)
    if view.request.mode == "staged" and len(view.rounds) == 2 and not view.running:
        ui_finetune.before_after_table(before_after(resources.runtime(), view.rounds[0].run_id, view.rounds[1].run_id))
    if not view.running and state.get("finetune.loop_seen") != view.started:
        state["finetune.loop_seen"] = view.started
        resources.models_changed()
        st.rerun()


progress()
loop_progress()
registering = latest_registration(jobs, settings.data_dir)
if registering is not None and state.get("finetune.registration_seen") != registering.view().started:
    registration(registering)
st.subheader("Fine-tuned models")
tuned = {m.adapter: m.id for m in resources.available_models()[0] if m.adapter is not None}
if not listed:
    st.caption("None yet.")
for n, adapter in enumerate(reversed(listed)):
    model_id = tuned.get(adapter.path, f"llama.cpp:{adapter.name}")
    finetune_models.adapter_card(adapter, model_id, delete, register if settings.ollama_host else None, expanded=n == 0)
