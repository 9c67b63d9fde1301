"""What an evaluation run shows: the summary table, the matrix, a cell, charts, a comparison, the recommendation."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from core.evaluation import reading, report
from core.evaluation.questions import EvalQuestion
from core.evaluation.recommend import Recommendation
from core.evaluation.report import RunData, Summary, compare_runs, matrix
from ui import components


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
    for read in reading.reading(run):
        st.caption(f"📖 {read.describe()}.")


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
    """Two rows of two charts, stacked on a narrow window with their axes kept whole."""
    frame = summary_frame(summaries)
    components.wrapping_columns("evaluate-charts", "20rem")
    charts_row = st.container(key="evaluate-charts")
    left, right = charts_row.columns(2)
    _metrics_chart(left, frame)
    _speed_chart(right, frame)
    left, right = charts_row.columns(2)
    _times_chart(left, run)
    _hits_chart(right, summaries)


def _metrics_chart(place: DeltaGenerator, frame: pd.DataFrame) -> None:
    bars = frame.melt(
        id_vars="strategy",
        value_vars=["correct", "contains", "token F1", "similarity", "hit@k"],
        var_name="metric",
        value_name="value",
    ).dropna()
    place.markdown("**Metrics by strategy**")
    place.altair_chart(
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


def _speed_chart(place: DeltaGenerator, frame: pd.DataFrame) -> None:
    place.markdown("**Correct versus median answer time**")
    place.altair_chart(
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


def _times_chart(place: DeltaGenerator, run: RunData) -> None:
    times = pd.DataFrame(
        [
            {"strategy": c.strategy, "seconds": c.total_s}
            for c in run.cells.values()
            if c.total_s is not None and c.error is None
        ]
    )
    if not times.empty:
        place.markdown("**Answer time per strategy**")
        place.altair_chart(
            alt.Chart(times)
            .mark_boxplot(extent="min-max")
            .encode(x="strategy:N", y=alt.Y("seconds:Q"), color="strategy:N"),
            width="stretch",
        )


def _hits_chart(place: DeltaGenerator, summaries: Sequence[Summary]) -> None:
    hits = pd.DataFrame(
        [
            {"strategy": s.strategy, "k": k, "hit rate": rate}
            for s in summaries
            if s.hit_at_1 is not None
            for k, rate in ((1, s.hit_at_1), (s.top_k, s.hit_at_k))
        ]
    )
    if not hits.empty:
        place.markdown("**Retrieval: right source in the top k**")
        place.altair_chart(
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


def cell_picker(run: RunData) -> None:
    with st.expander("Open a cell: answer, sources, prompt and metrics"):
        by_id = {q.id: q for q in run.questions}
        qid = st.selectbox(
            "Question", list(by_id), format_func=lambda i: f"{i}: {by_id[i].question}", key="evaluate.cell_q"
        )
        strategy = st.selectbox("Strategy", [s.name for s in run.strategies], key="evaluate.cell_s")
        show_cell(run, qid, strategy)
