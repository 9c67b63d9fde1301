"""Evaluate-page pieces that set a run up: the question set, the run panel and picker, forgetting, the judge.

What a run shows is ui.evaluate_results'; the strategy columns are ui.strategy_editor's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from core.errors import AppError
from core.evaluation import control, report
from core.evaluation import questions as qs
from core.evaluation.judge import JUDGE_SYSTEM, JUDGE_USER
from core.evaluation.metrics import Forgetting
from core.evaluation.report import RunData
from core.evaluation.runner import EvalRequest, load_request, start_run
from core.lab.board import JobBoard
from core.lab.corrections import from_corrections
from core.lab.evaluation import EvalView, running_ids, start_evaluation
from core.models import ModelInfo
from core.records import Records
from core.samples import SAMPLES
from core.strategies import Runtime, Strategy
from core.tables import RowIssue
from ui import components, resources
from ui.state import index_of, remembered
from ui.sweep import preparer, sweep_grid


def minutes(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = max(0, int(seconds))
    return f"{s // 60}:{s % 60:02d}"


def unique_names(strategies: list[Strategy]) -> list[Strategy]:
    """RAG and RAG again become RAG and RAG #2: the matrix needs one column per strategy."""
    seen: dict[str, int] = {}
    out = []
    for s in strategies:
        seen[s.name] = seen.get(s.name, 0) + 1
        out.append(s if seen[s.name] == 1 else replace(s, name=f"{s.name} #{seen[s.name]}"))
    return out


def progress_panel(view: EvalView, stop: Callable[[], None]) -> None:
    done = view.done / view.total if view.total else 0.0
    eta = f" · about {minutes(view.eta_s)} left" if view.eta_s is not None else ""
    st.progress(
        done, text=f"**{view.name}**: {view.done} / {view.total} answers · {minutes(view.elapsed_s)} elapsed{eta}"
    )
    st.caption(view.message)
    if view.running:
        st.button("⏹️ Stop", key="evaluate.stop", on_click=stop)
    elif view.status == "failed":
        st.error(view.message)


def forgetting_chart(rows: list[dict[str, object]]) -> None:
    frame = pd.DataFrame(rows)
    st.altair_chart(
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("model:N", title=None),
            y=alt.Y("accuracy:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            color="model:N",
            tooltip=["model", "accuracy"],
        ),
        width="stretch",
    )


SOURCES = ("Sample set", "Saved set", "Upload CSV/JSONL", "Corrected in Compare", "Control set")


def issues_table(issues: Sequence[RowIssue]) -> None:
    st.dataframe(pd.DataFrame([asdict(i) for i in issues], columns=["row", "field", "message"]), hide_index=True)


def question_set_picker(data_dir: Path) -> qs.QuestionSet | None:
    """The set to ask: the sample, a saved one, an upload (saved first), corrections, or the control set."""
    state = st.session_state  # the set chosen survives a refresh (ui.state's sticky keys)
    last = remembered(state, "evaluate.source", SOURCES[0], list(SOURCES))
    source = st.radio("Source", SOURCES, index=SOURCES.index(last), horizontal=True, key="evaluate.source")
    chosen: qs.QuestionSet | None = None
    if source == "Sample set":
        samples = {s.kb_name: s for s in SAMPLES.values()}
        kb = st.selectbox("Sample", list(samples), format_func=lambda k: f"{k} ({samples[k].language})",
                          index=index_of(list(samples), remembered(state, "evaluate.sample", None)),
                          key="evaluate.sample")  # fmt: skip
        chosen = qs.sample_set(kb)
        st.caption(f"Questions about the fictional company of the sample knowledge base {kb}, with source and page; "
                   f"give RAG columns the knowledge base {kb}.")  # fmt: skip
    elif source == "Saved set":
        saved = {s.name: s for s in qs.list_sets(data_dir)}
        if not saved:
            st.info("No saved set yet: upload one.")
        else:
            names = list(saved)
            remembered_set = remembered(state, "evaluate.saved", None)
            chosen = saved[
                st.selectbox("Question set", names, index=index_of(names, remembered_set), key="evaluate.saved")
            ]
    elif source == "Upload CSV/JSONL":
        st.caption("Columns `question` and `answer` (expected), optional `source` (document file name), `page`, `tag`.")
        upload = st.file_uploader(
            "Question set", type=["csv", "jsonl"], key=f"evaluate.upload{st.session_state['evaluate.upload_round']}"
        )
        if upload is not None:
            parsed = qs.parse_upload(upload.name, upload.getvalue())
            if parsed.issues:
                st.warning(f"{len(parsed.issues)} problem(s) in {parsed.rows} rows; fix the file, or keep the rest.")
                issues_table(parsed.issues)
            name = st.text_input("Save as", value=Path(upload.name).stem, key="evaluate.upload_name")
            label = (
                f"Save the {len(parsed.questions)} valid questions"
                if parsed.issues
                else f"Save {len(parsed.questions)} questions"
            )
            if parsed.questions and st.button(label, key="evaluate.save_upload"):
                saved_set = qs.save_set(data_dir, name, parsed.questions)
                st.session_state["evaluate.notice"] = (
                    f"Saved {name} ({len(saved_set.questions)} questions); pick it under Saved set."
                )
                st.session_state["evaluate.upload_round"] += 1
                st.rerun()
    elif source == "Corrected in Compare":
        chosen = from_corrections(data_dir / "datasets")
        if not chosen.questions:
            st.info("No corrections yet: mark a wrong answer in Compare (👎) and give the right one.")
            chosen = None
    else:
        chosen = qs.control_set()
        st.caption("General questions for measuring forgetting; section 5 runs them on the base and fine-tuned models.")
    if chosen is not None:
        st.caption(f"**{chosen.name}**: {len(chosen.questions)} questions · version `{chosen.version}`")
        with st.expander("Questions"):
            st.dataframe(pd.DataFrame([asdict(q) for q in chosen.questions]), hide_index=True, width="stretch")
    return chosen


def run_picker(records: Records, jobs: JobBoard) -> RunData | None:
    """A stored run (resumable when stopped or interrupted), or an imported JSON export."""
    state = st.session_state
    with st.expander("Import a JSON export"):
        upload = st.file_uploader("Evaluation JSON", type=["json"], key="evaluate.import")
        if upload is not None and state.get("evaluate.import_seen") != upload.file_id:  # a new file, not a rerun
            state["evaluate.import_seen"] = upload.file_id
            state["evaluate.imported"] = upload.getvalue().decode("utf-8", "replace")
    if state["evaluate.imported"]:
        try:
            run = report.from_json(state["evaluate.imported"])
        except AppError as e:
            st.error(str(e))
            state["evaluate.imported"] = None
        else:
            st.info(f"Showing the imported run “{run.name}” ({run.created}); it is not stored.")
            if st.button("Back to stored runs", key="evaluate.clear_import"):
                state["evaluate.imported"] = None
                st.rerun()
            return run
    runs = {r.id: r for r in records.runs()}
    if not runs:
        return None
    live = running_ids(jobs)
    if state["evaluate.run_id"] not in runs:  # the newest run on the user's questions, not a control run
        state["evaluate.run_id"] = next(
            (i for i, r in runs.items() if r.question_set != qs.CONTROL_SET), next(iter(runs))
        )
    components.show_current_label("evaluate.run_id", components.run_label(runs[state["evaluate.run_id"]], live))
    run_id = st.selectbox(
        "Run", list(runs), format_func=lambda i: components.run_label(runs[i], live), key="evaluate.run_id"
    )
    row = runs[run_id]
    resumable = row.status in ("stopped", "failed", "running") and run_id not in live
    if resumable and st.button("⏯️ Resume (asks only the missing answers)", key="evaluate.resume", disabled=bool(live)):
        try:
            grid = sweep_grid(load_request(resources.runtime(), run_id))
            prepare = preparer(grid) if grid is not None and grid.kb else None  # scratch knowledge bases first
            start_evaluation(jobs, resources.runtime(), run_id, resources.embedder().embeddings, prepare)
            st.rerun()
        except AppError as e:
            st.error(str(e))
    return report.load_run(records, run_id)


def forgetting_section(runtime: Runtime, models: list[ModelInfo], jobs: JobBoard, busy: bool) -> dict[str, Forgetting]:
    """Start a control run, and chart the latest finished one; returns forgetting per fine-tuned model."""
    columns = control.control_strategies(models)
    control_set = qs.control_set()
    st.caption(
        f"{len(control_set.questions)} general questions asked plainly by the base and by every fine-tuned model; "
        "only those the base answers correctly count, so the drop is what fine-tuning made it forget."
    )
    if len(columns) < 2:
        st.info("No fine-tuned model yet: forgetting compares one with its base. Train one on the Fine-tune page.")
    label = f"Run the control set ({len(control_set.questions)} questions × {len(columns)} models)"
    if st.button(label, key="evaluate.control", disabled=busy or len(columns) < 2):
        try:
            # Results keep showing the user's run: the control run feeds this section only.
            request = EvalRequest("control", qs.CONTROL_SET, control_set.questions, tuple(columns))
            start_evaluation(jobs, runtime, start_run(runtime, request), resources.embedder().embeddings)
            st.rerun()
        except AppError as e:
            st.error(str(e))
    done = [r for r in runtime.records.runs() if r.question_set == qs.CONTROL_SET and r.status == "done"]
    if not done:
        return {}
    run = report.load_run(runtime.records, done[0].id)
    result = control.forgetting_by_model(run)
    known = control.base_known(run)
    st.caption(
        f"Control run #{run.id}: the base answered {known} of {len(run.questions)} control questions correctly; "
        f"forgetting is measured on those {known}."
    )
    if known:
        rows: list[dict[str, object]] = [{"model": "base", "accuracy": 1.0}]
        rows += [{"model": m.removeprefix("llama.cpp:"), "accuracy": f.tuned_accuracy} for m, f in result.items()]
        forgetting_chart(rows)
    return result


def judge_picker(models: list[ModelInfo]) -> str | None:
    """An optional served model (Ollama's, a server's) that grades every answer too; its prompt is shown."""
    judges = [m.id for m in models if m.backend != "llama.cpp"]
    if not judges:
        st.caption("LLM judge: none (it needs a served model, Ollama's or an OpenAI-compatible server's; the "
                   "embedded one is too small to judge).")  # fmt: skip
        return None
    picked = st.selectbox("LLM judge (optional)", ["none", *judges], key="evaluate.judge")
    with st.expander("The judge's prompt"):
        st.code(f"{JUDGE_SYSTEM}\n\n{JUDGE_USER}", language=None, wrap_lines=True)
    return None if picked == "none" else picked
