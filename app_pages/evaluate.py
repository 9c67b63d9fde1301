"""Evaluate: a question set through chosen strategies in the background; matrix, charts, recommendation."""

from __future__ import annotations

import streamlit as st

from core.errors import AppError
from core.evaluation import control, freshness, report
from core.evaluation.questions import CONTROL_SET
from core.evaluation.recommend import Weights, recommend
from core.evaluation.runner import EvalRequest, start_run
from core.files import now_iso
from core.finetune import modes
from core.lab.corrections import save_failures
from core.lab.evaluation import latest_evaluation, start_evaluation
from core.rag_preset import load_rag_preset
from core.strategies import RAG_TOP_K, presets, reads_chinese
from ui import components, resources, sweep
from ui import evaluate as ui_evaluate
from ui import evaluate_results as results
from ui import freshness as fresh_ui
from ui.notices import chinese_model_notice
from ui.state import follow_rag_preset, init_state
from ui.strategy_editor import evaluate_spec, strategy_editor

init_state(st.session_state)
state = st.session_state
st.title("📊 Evaluate")
st.caption("Ask a whole question set with each strategy and measure: correctness, retrieval, speed, forgetting.")
settings = resources.settings()
runtime = resources.runtime()
models, _ = resources.available_models()
try:
    kbs = [kb.name for kb in resources.store().list_kbs()]
except AppError as e:
    st.warning(f"Retrieval is unavailable, strategies without it still run: {e}")
    kbs = []
kb = next((k for k in (state.get("kb"), state.get("documents.kb")) if k in kbs), kbs[0] if kbs else None)
jobs = resources.jobs()
for key in ("notice", "error"):
    if state[f"evaluate.{key}"]:
        (st.success if key == "notice" else st.error)(state[f"evaluate.{key}"])
        state[f"evaluate.{key}"] = None

st.subheader("1 · Questions")
try:
    chosen = ui_evaluate.question_set_picker(settings.data_dir)
except AppError as e:
    st.error(str(e))
    chosen = None

st.subheader("2 · Strategies")
if (applied := state.pop("evaluate.follow_preset", None)) is not None:
    follow_rag_preset(state, applied.top_k, applied.score_threshold, applied.template, resources.preferences().update)
n = st.selectbox("Columns", [1, 2, 3, 4], key="evaluate.ncols")
chinese = reads_chinese(resources.store(), kb, [q.question for q in chosen.questions] if chosen else [])
available = presets(models, kb, load_rag_preset(settings.data_dir), chinese=chinese)
names = runtime.templates.names()
picked = []
components.wrapping_columns("evaluate-strategies", "13.5rem", sized={"evaluate-placeholder-": "8rem"})
for i, col in enumerate(st.container(key="evaluate-strategies").columns(n, border=True)):
    with col:
        if (s := strategy_editor(evaluate_spec(kbs), i, available, models, names, kb)) is not None:
            picked.append(s)
rag = load_rag_preset(settings.data_dir)
hybrid = modes.mode_strategies(settings.data_dir, models, kb, top_k=rag.top_k if rag else RAG_TOP_K) if kb else []
if hybrid:
    shown = ", ".join(s.name.removeprefix("FT+RAG · ") for s in hybrid)
    if st.toggle(
        f"Also every training mode side by side: one FT+RAG column per mode, its newest model ({shown})",
        key="evaluate.modes",
        help="Each column serves the newest model trained in that mode (Fine-tune page) with retrieval from "
        f"{kb}, like the FT+RAG preset.",
    ):
        picked += hybrid
strategies = ui_evaluate.unique_names(picked)
if chosen is not None and (
    notice := chinese_model_notice(
        strategies, [q.question for q in chosen.questions], resources.store(), [m.id for m in models]
    )
):
    st.warning(notice, icon="🀄")

st.subheader("3 · Run")
if busy_with := jobs.busy():  # one heavy job at a time, of whatever kind
    st.caption(f"⏳ {busy_with}")
busy = busy_with is not None
if chosen is not None:
    if state.get("evaluate.limit", 0) > len(chosen.questions):  # a smaller set was chosen since
        state["evaluate.limit"] = len(chosen.questions)
    limit = st.number_input("Questions to ask", 1, len(chosen.questions), len(chosen.questions), key="evaluate.limit")
    default_name = f"{chosen.name} · {now_iso()[:16].replace('T', ' ')}"
    run_name = st.text_input("Run name", value=default_name, key="evaluate.name")
    judge = ui_evaluate.judge_picker(models)
    cells = int(limit) * len(strategies)
    if st.button(f"▶️ Evaluate ({cells} answers)", type="primary", key="evaluate.start", disabled=busy or not cells):
        try:
            request = EvalRequest(
                run_name, chosen.name, chosen.questions[: int(limit)], tuple(strategies), judge_model=judge
            )
            state["evaluate.run_id"] = start_run(runtime, request)
            start_evaluation(jobs, runtime, state["evaluate.run_id"], resources.embedder().embeddings)
        except AppError as e:
            st.error(str(e))


@st.fragment(run_every=1.0)
def progress() -> None:
    job = latest_evaluation(jobs)
    if job is None:
        return
    view = job.view()
    ui_evaluate.progress_panel(view, job.cancel)
    if not view.running and state.get("evaluate.seen") != view.run_id:
        state["evaluate.seen"] = view.run_id
        st.rerun()  # the whole page: the finished run's results appear below


progress()

st.subheader("4 · Parameter sweep")
st.caption("RAG over a grid of chunkings, top-k, score thresholds and templates: one run; heatmaps; apply the best.")
sweep.setup(runtime, kbs, kb, chosen, available, jobs, busy)
sweep.results(runtime, jobs, busy)
sweep.scratch_cleanup(busy)

st.subheader("5 · Results")
run = ui_evaluate.run_picker(runtime.records, jobs)
if run is None:
    st.info("No evaluation yet: choose a question set and strategies, then press Evaluate.")
    st.stop()
summaries = report.summarize(run)
results.show_summary(summaries)
train = control.training_seconds(settings.data_dir, models)
if used := {s.model: train[s.model] for s in run.strategies if s.model in train}:
    st.caption("Training time (from each adapter's manifest): " + ", ".join(f"{m} {t:.0f} s" for m, t in used.items()))
f1, f2 = st.columns(2)
failures_only = f1.toggle("Failures only", key="evaluate.failures_only")
disagree_only = f2.toggle("Strategies disagree", key="evaluate.disagree_only")
results.show_matrix(run, failures_only, disagree_only)
results.cell_picker(run)
results.charts(run, summaries)

with st.expander("Compare with an earlier run on the same questions"):
    earlier = [r for r in runtime.records.runs(set_hash=run.request.set_hash) if run.id is None or r.id < run.id]
    if not earlier:
        st.caption("No earlier run of this question-set version.")
    else:
        other = st.selectbox("Earlier run", earlier, format_func=lambda r: f"#{r.id} {r.name}", key="evaluate.earlier")
        results.show_comparison(run, report.load_run(runtime.records, other.id))

e1, e2, e3 = st.columns(3)
e1.download_button("⬇️ CSV (one row per answer)", report.to_csv(run), f"evaluation-{run.id}.csv", "text/csv",
                   key="evaluate.csv")  # fmt: skip
e2.download_button("⬇️ JSON (run and answers)", report.to_json(run), f"evaluation-{run.id}.json",
                   "application/json", key="evaluate.json")  # fmt: skip
with e3.popover("🎯 Send failures to fine-tuning"):
    who = st.selectbox("Strategy", [s.name for s in run.strategies], key="evaluate.fail_strategy")
    wrong = report.failures(run, who)
    target = st.text_input("Dataset", value=f"failures-{who}".lower().replace(" ", "-").replace("+", "-"),
                           key="evaluate.fail_dataset")  # fmt: skip
    if st.button(f"Save {len(wrong)} question/answer pairs", key="evaluate.send_failures", disabled=not wrong):
        try:
            save_failures(settings.data_dir / "datasets", target, wrong)
            state["evaluate.notice"] = f"Saved {len(wrong)} pairs as dataset {target}; train on it on Fine-tune."
            st.rerun()
        except AppError as e:
            st.error(str(e))

st.subheader("6 · Forgetting")
forgot = ui_evaluate.forgetting_section(runtime, models, jobs, busy)

st.subheader("7 · Freshness")
fresh = fresh_ui.section(runtime, available, kbs, run, settings.data_dir)

st.subheader("8 · Recommendation")
w = st.columns(4)
weights = Weights(
    w[0].slider("Accuracy", 0, 5, 3, key="evaluate.w.accuracy"),
    w[1].slider("Speed", 0, 5, 1, key="evaluate.w.speed"),
    w[2].slider("Documents change often", 0, 5, 1, key="evaluate.w.freshness"),
    w[3].slider("Little training budget", 0, 5, 1, key="evaluate.w.budget"),
)
if run.question_set == CONTROL_SET:
    st.info("The run shown is a control run: general questions that measure forgetting only. Choose a run on your "
            "own questions under Results for a recommendation.")  # fmt: skip
else:
    results.show_recommendation(
        recommend(
            summaries,
            weights,
            report.outcomes(run),
            train_seconds=train,
            forgetting=forgot,
            freshness=freshness.followed_share(fresh),
        )
    )
