"""Evaluate-page pieces: strategy columns, the run panel, the matrix, a cell, charts, comparison, recommendation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from core.errors import AppError
from core.evaluation import control, reading, report
from core.evaluation import questions as qs
from core.evaluation.judge import JUDGE_SYSTEM, JUDGE_USER
from core.evaluation.metrics import Forgetting
from core.evaluation.questions import EvalQuestion
from core.evaluation.recommend import Recommendation
from core.evaluation.report import RunData, Summary, compare_runs, matrix
from core.evaluation.runner import EvalRequest, load_request, start_run
from core.lab.board import JobBoard
from core.lab.corrections import from_corrections
from core.lab.evaluation import EvalView, running_ids, start_evaluation
from core.models import ModelInfo
from core.records import Records
from core.samples import SAMPLES
from core.strategies import PRESET_ORDER, Preset, Runtime, Strategy
from core.tables import RowIssue
from ui import components, resources
from ui.state import index_of, remembered
from ui.sweep import preparer, sweep_grid


def minutes(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = max(0, int(seconds))
    return f"{s // 60}:{s % 60:02d}"


def _index(options: Sequence[str], value: str | None) -> int:
    return list(options).index(value) if value in options else 0


def strategy_column(
    i: int, presets: dict[str, Preset], models: list[ModelInfo], templates: list[str], kbs: list[str]
) -> Strategy | None:
    """One strategy's settings, as a Compare column has them; None when the preset cannot run."""
    k = f"evaluate.col{i}"
    kind = st.selectbox("Strategy", PRESET_ORDER, key=f"{k}.preset")
    preset = presets[kind]
    if preset.disabled_reason:
        st.container(key=f"evaluate-placeholder-{i}").info(preset.disabled_reason)
        return None
    s = preset.strategy
    labels = {m.id: m.label for m in models if (m.fine_tuned or kind in ("PE", "RAG"))}
    with st.expander("Settings"):
        model = st.selectbox(
            "Model",
            list(labels),
            index=_index(list(labels), s.model),
            format_func=labels.__getitem__,
            key=f"{k}.{kind}.model",
        )
        template = st.selectbox("Template", templates, index=_index(templates, s.template), key=f"{k}.{kind}.template")
        retrieval = st.toggle("Retrieval", value=s.retrieval, key=f"{k}.{kind}.retrieval")
        kb, top_k, threshold = s.kb, s.top_k, s.score_threshold
        if retrieval:
            if not kbs:
                st.warning("No knowledge base yet: add documents on the Documents page.")
                return None
            kb = st.selectbox("Knowledge base", kbs, index=_index(kbs, s.kb), key=f"{k}.{kind}.kb")
            top_k = st.slider("Top-k", 1, 10, s.top_k, key=f"{k}.{kind}.top_k")
            threshold = st.slider("Score threshold", 0.0, 1.0, 0.0, 0.05, key=f"{k}.{kind}.threshold") or None
        max_tokens = st.slider("Max answer tokens", 16, 512, 128, 16, key=f"{k}.{kind}.max_tokens")
    name = kind if not retrieval or top_k == s.top_k or kind not in ("RAG", "FT+RAG") else f"{kind} k={top_k}"
    if model != s.model and kind in ("FT", "FT+RAG"):
        name += f" ({labels[model].split('+')[-1].split(' ')[0]})"
    strategy = replace(
        s,
        name=name,
        model=model,
        template=template,
        retrieval=retrieval,
        kb=kb,
        top_k=top_k,
        score_threshold=threshold,
        max_tokens=max_tokens,
    )
    st.caption(f"Column name: **{components.md_escape(name)}**")
    return strategy


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


def summary_frame(summaries: Sequence[Summary]) -> pd.DataFrame:
    rows = []
    for s in summaries:
        rows.append(
            {
                "strategy": s.strategy,
                "correct": s.correct,
                "exact": s.exact,
                "contains": s.contains,
                "token F1": s.f1,
                "similarity": s.similarity,
                "supported": s.supported,
                "hit@1": s.hit_at_1,
                "hit@k": s.hit_at_k,
                "MRR": s.mrr,
                "first token p50 (s)": s.ttft_p50,
                "p50 (s)": s.total_p50,
                "p95 (s)": s.total_p95,
                "tokens in": s.tokens_in,
                "tokens out": s.tokens_out,
                "LLM judge": s.judge,
                "answers": s.answered,
                "errors": s.errors,
                "model": s.model,
            }
        )
    return pd.DataFrame(rows)


RETRIEVAL_COLUMNS = ("hit@1", "hit@k", "MRR")


def show_summary(summaries: Sequence[Summary]) -> None:
    """The per-strategy table; a column nothing in the run measured is left out, and the page says why."""
    pct = st.column_config.NumberColumn(format="percent")
    frame = summary_frame(summaries)
    unmeasured = [c for c in frame.columns if frame[c].isna().all()]
    st.dataframe(
        frame.drop(columns=unmeasured),
        hide_index=True,
        width="stretch",
        column_config={c: pct for c in ("correct", "exact", "contains", "supported", "hit@1", "hit@k", "LLM judge")}
        | {
            c: st.column_config.NumberColumn(format="%.2f")
            for c in ("token F1", "similarity", "MRR", "first token p50 (s)", "p50 (s)", "p95 (s)")
        }
        | {c: st.column_config.NumberColumn(format="%.0f") for c in ("tokens in", "tokens out")},
    )
    if all(c in unmeasured for c in RETRIEVAL_COLUMNS) and any(s.retrieval for s in summaries):
        st.caption(
            "Retrieval not scored: this question set names no source document for its questions, so hit@k and MRR "
            "cannot be measured. Add a `source` column (the document's file name) to score retrieval."
        )
    if others := [c for c in unmeasured if c not in RETRIEVAL_COLUMNS]:
        st.caption(f"Not measured in this run, so not shown: {', '.join(others)}.")


def show_matrix(run: RunData, failures_only: bool, disagree_only: bool) -> None:
    """Questions x strategies; each cell ✅/❌ with its token F1, coloured."""
    rows = matrix(run, failures_only=failures_only, disagree_only=disagree_only)
    if not rows:
        st.caption("No question matches these filters.")
        return
    names = [s.name for s in run.strategies]
    data = []
    for r in rows:
        line = {"id": r["question"].id, "question": r["question"].question, "expected": r["question"].answer}
        for n in names:
            v = r["cells"][n]
            line[n] = "…" if v is None else f"{'✅' if v[0] else '❌'} {v[1]:.2f}" + _lost(run, r["question"], n)
        data.append(line)
    frame = pd.DataFrame(data, columns=["id", *names, "question", "expected"])  # verdicts first: visible at once

    def colour(value: object) -> str:
        text = str(value)
        if text.startswith("✅"):
            return "background-color: #d9f2d9"
        if text.startswith("❌"):
            return "background-color: #f8d7d7"
        return ""

    st.dataframe(frame.style.map(colour, subset=names), hide_index=True, width="stretch")
    st.caption(
        f"{len(rows)} of {len(run.questions)} questions · ✅ correct / ❌ wrong, with token F1; a wrong answer of a "
        "retrieval strategy says where it was lost: not retrieved (fix retrieval: chunking, top-k, the embedding "
        "model), not in the excerpt (the template's excerpt left it out) or not read (the model had it and missed it)"
    )
    for r in reading.reading(run):
        st.caption(f"📖 {r.describe()}.")


def _lost(run: RunData, question: EvalQuestion, strategy: str) -> str:
    cell = run.cell(question.id, strategy)
    kind = None if cell is None else reading.failure_kind(cell, question.answer)
    return f" · {reading.SHORT[kind]}" if kind else ""


def show_cell(run: RunData, question_id: str, strategy: str) -> None:
    q = next(q for q in run.questions if q.id == question_id)
    cell = run.cell(question_id, strategy)
    st.markdown(
        f"**Q:** {components.md_escape(q.question)}  \n**Expected:** {components.md_escape(q.answer)}"
        + (
            f"  \n**Source:** {components.md_escape(q.source)}" + (f", page {q.page}" if q.page else "")
            if q.source
            else ""
        )
    )
    if cell is None:
        st.info("Not answered yet.")
        return
    kind = reading.failure_kind(cell, q.answer)
    verdict = "✅ correct" if cell.correct else "❌ wrong" + (f": {kind}" if kind else "")
    st.markdown(f"**{components.md_escape(strategy)}** · {verdict}")
    st.text(cell.answer or "(empty answer)")
    if cell.error:
        st.error(cell.error)
    st.markdown(cell_metrics_text(cell))
    for n, src in enumerate(cell.sources, start=1):
        with st.expander(
            f"#{n} {components.md_escape(str(src.get('filename')))} · page {src.get('page')} · "
            f"score {float(src.get('score', 0)):.2f}"
        ):
            st.text(str(src.get("text", "")))
    with st.expander("Exact prompt"):
        st.code(cell.prompt or "(not sent)", language=None, wrap_lines=True)


def _yes(value: object) -> str:
    return "yes" if value else "no"


def cell_metrics_text(cell: report.Cell) -> str:
    """An answer's scores as a reader reads them: one labelled item a line, what was not measured said so."""
    m = cell.metrics
    lines = [
        f"Contains the expected answer: {_yes(m.get('contains'))} · exact match: {_yes(m.get('exact'))} · "
        f"token F1 {float(m.get('f1') or 0):.2f} · share of the expected words in the answer "
        f"{float(m.get('recall') or 0):.0%}"
    ]
    if m.get("similarity") is not None:
        lines.append(f"Meaning close to the expected answer (cosine): {float(m['similarity']):.2f}")
    if m.get("supported") is not None:
        lines.append(f"Answer sentences supported by the retrieved text: {float(m['supported']):.0%}")
    if m.get("retrieval_scored"):
        rank = m.get("rank")
        lines.append(
            f"Expected source retrieved at rank {rank}" if rank else "Expected source not among the retrieved chunks"
        )
    elif cell.sources:
        lines.append("Retrieval not scored: the question names no source document")
    if m.get("judge") is not None:
        lines.append(f"LLM judge: {'correct' if m['judge'] else 'wrong'}")
    lines.append(
        f"Answer time {cell.total_s or 0:.2f} s (first token {cell.ttft_s or 0:.2f} s) · "
        f"{cell.prompt_tokens or 0} tokens in, {cell.completion_tokens or 0} out"
    )
    return "  \n".join(lines)


def charts(run: RunData, summaries: Sequence[Summary]) -> None:
    frame = summary_frame(summaries)
    components.wrapping_columns("evaluate-charts", "20rem")  # stacked on a narrow window, axes kept whole
    charts_row = st.container(key="evaluate-charts")
    left, right = charts_row.columns(2)
    bars = frame.melt(
        id_vars="strategy",
        value_vars=["correct", "contains", "token F1", "similarity", "hit@k"],
        var_name="metric",
        value_name="value",
    ).dropna()
    left.markdown("**Metrics by strategy**")
    left.altair_chart(
        alt.Chart(bars)
        .mark_bar()
        .encode(  # bars across: the metric names stay readable however narrow the chart
            y=alt.Y("metric:N", title=None, sort=None, axis=alt.Axis(labelLimit=120)),
            yOffset="strategy:N",
            x=alt.X("value:Q", title=None, axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("strategy:N", legend=alt.Legend(orient="bottom", columns=2)),
            tooltip=["strategy", "metric", alt.Tooltip("value:Q", format=".2f")],
        ),
        width="stretch",
    )
    right.markdown("**Correct versus median answer time**")
    right.altair_chart(
        alt.Chart(frame.dropna(subset=["p50 (s)"]))
        .mark_circle(size=160)
        .encode(
            x=alt.X("p50 (s):Q", title="p50 answer time (s)"),
            y=alt.Y("correct:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            color="strategy:N",
            tooltip=["strategy", "correct", "p50 (s)"],
        ),
        width="stretch",
    )
    times = pd.DataFrame(
        [
            {"strategy": c.strategy, "seconds": c.total_s}
            for c in run.cells.values()
            if c.total_s is not None and c.error is None
        ]
    )
    left, right = charts_row.columns(2)
    if not times.empty:
        left.markdown("**Answer time per strategy**")
        left.altair_chart(
            alt.Chart(times)
            .mark_boxplot(extent="min-max")
            .encode(x="strategy:N", y=alt.Y("seconds:Q"), color="strategy:N"),
            width="stretch",
        )
    hits = pd.DataFrame(
        [
            {"strategy": s.strategy, "k": k, "hit rate": rate}
            for s in summaries
            if s.hit_at_1 is not None
            for k, rate in ((1, s.hit_at_1), (s.top_k, s.hit_at_k))
        ]
    )
    if not hits.empty:
        right.markdown("**Retrieval: right source in the top k**")
        right.altair_chart(
            alt.Chart(hits.drop_duplicates())
            .mark_bar()
            .encode(
                x=alt.X("k:O"),
                xOffset="strategy:N",
                y=alt.Y("hit rate:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
                color="strategy:N",
            ),
            width="stretch",
        )


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


def show_comparison(run: RunData, earlier: RunData) -> None:
    changes, flips = compare_runs(run, earlier)
    st.dataframe(
        pd.DataFrame(
            [{"strategy": c.strategy, "before": c.before, "now": c.after, "change": c.delta} for c in changes]
        ),
        hide_index=True,
        column_config={k: st.column_config.NumberColumn(format="percent") for k in ("before", "now", "change")},
    )
    if flips:
        st.dataframe(pd.DataFrame(flips), hide_index=True, width="stretch")
    else:
        st.caption("No question changed its verdict.")


def show_recommendation(rec: Recommendation) -> None:
    """The verdict (or "not settled"), what it rests on, then each strategy's score and reasons."""
    st.markdown(rec.summary)
    if rec.evidence:
        st.caption(rec.evidence[0])
    for warning in rec.evidence[1:]:
        st.warning(warning)
    for n, r in enumerate(rec.ranking, start=1):
        parts = " · ".join(f"{k} {v:.2f}" for k, v in r.parts.items())
        head = f"{n}. {r.strategy}" if rec.settled else r.strategy
        with st.expander(f"{head}: {r.score:.2f} ({parts})", expanded=n == 1 and rec.settled):
            for reason in r.reasons:
                st.markdown(f"- {reason}")
    if rec.needs_fine_tuning:
        st.info(rec.needs_fine_tuning)
        st.page_link("app_pages/finetune.py", label="Go to Fine-tune", icon="🎯")


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


def cell_picker(run: RunData) -> None:
    with st.expander("Open a cell: answer, sources, prompt and metrics"):
        by_id = {q.id: q for q in run.questions}
        qid = st.selectbox(
            "Question", list(by_id), format_func=lambda i: f"{i}: {by_id[i].question}", key="evaluate.cell_q"
        )
        strategy = st.selectbox("Strategy", [s.name for s in run.strategies], key="evaluate.cell_s")
        show_cell(run, qid, strategy)


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
