"""The Evaluate page's parameter sweep: the grid, its run in the background, heatmaps, and "apply the best"."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

import altair as alt
import pandas as pd
import streamlit as st

from core.errors import AppError, EvaluationError
from core.evaluation import report, sweep
from core.evaluation.metrics import percentile
from core.evaluation.questions import QuestionSet
from core.evaluation.runner import EvalRequest, start_run
from core.evaluation.sweep import CellResult, Chunking, Grid
from core.files import now_iso
from core.lab.board import JobBoard
from core.lab.evaluation import running_ids, start_evaluation
from core.progress import CancelFlag, Progress
from core.rag_preset import RagPreset, load_rag_preset, reset_rag_preset, save_rag_preset
from core.records import Records
from core.store import Store
from core.strategies import RAG_TEMPLATE, RAG_TOP_K, Preset, Runtime
from ui import components, resources

DEFAULT_CHUNKINGS = "400/60, 800/120, 1200/180"
THRESHOLDS: list[str] = ["none", "0.2", "0.3", "0.4", "0.5"]
MAX_TOKENS = 128  # as the Evaluate columns answer by default


def parse_chunkings(text: str) -> tuple[Chunking, ...]:
    """'400/60, 800/120' -> chunkings, in the order given, without repeats."""
    found = re.findall(r"(\d+)\s*/\s*(\d+)", text or "")
    rest = re.sub(r"(\d+)\s*/\s*(\d+)|[\s,;]", "", text or "")
    if rest or not found:
        raise EvaluationError(f"Write chunkings as size/overlap pairs, e.g. {DEFAULT_CHUNKINGS}.")
    return tuple(dict.fromkeys(Chunking(int(a), int(b)) for a, b in found))


def _answer_seconds(records: Records) -> float | None:
    """The median answer time of the newest run that has answers (None without one)."""
    for row in records.runs()[:5]:
        times = [a.total_s for a in records.run_answers(row.id) if a.error is None and a.total_s]
        if times:
            return percentile(times, 50)
    return None


def preset_caption(data_dir: Path) -> None:
    """The RAG preset's settings now, with a way back to the built-in ones."""
    saved = load_rag_preset(data_dir)
    top_k, threshold, template = (saved.top_k, saved.score_threshold, saved.template) if saved else (
        RAG_TOP_K, None, RAG_TEMPLATE)  # fmt: skip
    origin = f"from {saved.note}, {saved.updated[:16].replace('T', ' ')}" if saved else "built-in"
    c1, c2 = st.columns([5, 1], vertical_alignment="center")
    c1.caption(
        f"RAG preset now: top-{top_k} · {'no threshold' if threshold is None else f'score ≥ {threshold:g}'} · "
        f"template {components.md_escape(template)} ({components.md_escape(origin)})"
    )
    if saved and c2.button("Reset", key="evaluate.sweep.reset_preset", help="Back to the built-in RAG preset"):
        reset_rag_preset(data_dir)
        st.session_state["evaluate.notice"] = "The RAG preset is back to its built-in settings."
        st.session_state["evaluate.follow_preset"] = RagPreset(RAG_TOP_K, None, RAG_TEMPLATE)
        st.rerun()


def setup(
    runtime: Runtime, kbs: list[str], kb: str | None, chosen: QuestionSet | None, available: dict[str, Preset],
    jobs: JobBoard, busy: bool,
) -> None:  # fmt: skip
    """Pick knowledge base and grid; start the sweep in the background."""
    state = st.session_state
    settings = resources.settings()
    preset_caption(settings.data_dir)
    if not kbs:
        st.info("A sweep re-chunks a knowledge base: add documents on the Documents page first.")
        return
    if chosen is None:
        st.info("Choose a question set under 1 · Questions first.")
        return
    store = resources.store()
    c1, c2 = st.columns(2)
    source = c1.selectbox("Knowledge base", kbs, index=kbs.index(kb) if kb in kbs else 0, key="evaluate.sweep.kb")
    n_max = len(chosen.questions)
    limit = c2.number_input("Questions", 1, n_max, min(10, n_max), key="evaluate.sweep.limit")
    info = store.get_kb(source)
    rag = available["RAG"].strategy
    templates = runtime.templates.names()
    components.wrapping_columns("evaluate-sweep-grid", "10rem")  # two by two on a narrow window, values readable
    g1, g2, g3, g4 = st.container(key="evaluate-sweep-grid").columns([3, 2, 2, 3])
    chunk_text = g1.text_input(
        "Chunkings (size/overlap)", DEFAULT_CHUNKINGS, key="evaluate.sweep.chunkings",
        help=f"Characters; {source} is chunked {info.chunk_size}/{info.chunk_overlap}. Each is re-chunked into "
        "a hidden scratch knowledge base, reused by later sweeps.",
    )  # fmt: skip
    top_ks = g2.multiselect("Top-k", list(range(1, 9)), [1, 2, 3], key="evaluate.sweep.top_k")
    thresholds = g3.multiselect("Score threshold", THRESHOLDS, ["none"], key="evaluate.sweep.threshold")
    default_template = [rag.template] if rag.template in templates else templates[:1]
    picked = g4.multiselect("Template", templates, default_template, key="evaluate.sweep.template")
    try:
        grid = Grid(
            source,
            parse_chunkings(chunk_text),
            tuple(sorted(top_ks)),
            tuple(None if t == "none" else float(t) for t in thresholds),
            tuple(picked),
        )
        grid.check()
    except AppError as e:
        st.warning(str(e))
        return
    n = _estimate(runtime, store, grid, int(limit))
    if st.button(f"🧪 Sweep ({n} answers)", type="primary", key="evaluate.sweep.start", disabled=busy):
        base = replace(rag, kb=source, max_tokens=MAX_TOKENS)
        name = f"Sweep of {source} · {chosen.name} · {now_iso()[:16].replace('T', ' ')}"
        try:
            request = sweep.request(grid, base, name, chosen.name, chosen.questions[: int(limit)])
            run_id = start_run(runtime, request)
            state["evaluate.run_id"] = state["evaluate.sweep.run"] = run_id
            start_evaluation(jobs, runtime, run_id, resources.embedder().embeddings, preparer(grid))
            st.rerun()
        except AppError as e:
            st.error(str(e))


def _estimate(runtime: Runtime, store: Store, grid: Grid, limit: int) -> int:
    """Say how many answers and chunks to embed the sweep means, and about how long; returns the answers."""
    n = sweep.answers(grid, limit)
    chunks = sweep.chunks_to_embed(store, grid)
    per_answer = _answer_seconds(runtime.records)
    seconds = sweep.estimate_s(n, chunks, per_answer)
    basis = f"{per_answer:.1f} s an answer, as in the last run" if per_answer else "a first guess of "
    basis += "" if per_answer else f"{sweep.ANSWER_S:g} s an answer"
    st.caption(
        f"{len(grid.cells)} settings × {limit} questions = **{n} answers**"
        + (f", and about {chunks} chunks to embed" if chunks else ", scratch knowledge bases ready")
        + f" · about {max(1, round(seconds / 60))} min ({basis})."
    )
    return n


def preparer(grid: Grid) -> Callable[[Progress, CancelFlag], None]:
    """The job's first step: the grid's scratch knowledge bases."""
    store = resources.store()

    def prepare(progress: Progress, cancel: CancelFlag) -> None:
        sweep.prepare(store, grid, progress=progress, cancel=cancel)

    return prepare


def sweep_grid(request: EvalRequest) -> Grid | None:
    """The grid of a stored run, its source among the knowledge bases there are now."""
    try:
        kbs = [k.name for k in resources.store().list_kbs()]
    except AppError:
        kbs = []
    return sweep.grid_of(request, kbs)


def results_frame(cells: Sequence[CellResult]) -> pd.DataFrame:
    rows = []
    for c in cells:
        threshold = "no threshold" if c.cell.threshold is None else f"score ≥ {c.cell.threshold:g}"
        rows.append({
            "chunking": c.cell.chunking.label,
            "top-k": c.cell.top_k,
            "setting": f"{c.cell.template} · {threshold}",
            "correct": c.correct,
            "p50 (s)": c.p50_s,
            "answers": c.answered,
            "strategy": c.strategy,
        })  # fmt: skip
    return pd.DataFrame(rows)


def heatmap(
    frame: pd.DataFrame, field: str, title: str, fmt: str, scheme: Literal["greens", "oranges"]
) -> alt.FacetChart:
    """Chunking (rows) by top-k (columns), one panel per template and threshold."""
    order = list(dict.fromkeys(frame["chunking"]))
    base = alt.Chart(frame).encode(
        x=alt.X("top-k:O", title="top-k", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("chunking:N", sort=order, title="chunking (size/overlap)"),
    )
    rect = base.mark_rect().encode(
        color=alt.Color(f"{field}:Q", title=title, scale=alt.Scale(scheme=scheme), legend=alt.Legend(format=fmt)),
        tooltip=[
            "strategy:N",
            alt.Tooltip("correct:Q", format=".0%"),
            alt.Tooltip("p50 (s):Q", format=".2f"),
            "answers:Q",
        ],
    )
    text = base.mark_text(baseline="middle").encode(text=alt.Text(f"{field}:Q", format=fmt))
    size = {"width": 70 * frame["top-k"].nunique(), "height": 40 * len(order)}  # cells wide enough for "100%"
    panels = (rect + text).properties(**size)
    chart: alt.FacetChart = panels.facet(column=alt.Column("setting:N", title=None)).properties(title=title)
    return chart


def results(runtime: Runtime, jobs: JobBoard, busy: bool) -> None:
    """The chosen sweep run: heatmaps of correctness and latency, the best cell, and applying it."""
    state = st.session_state
    runs = []
    for row in runtime.records.runs():
        request = EvalRequest.from_spec(row.name, row.question_set, row.spec)
        if sweep.grid_of(request) is not None:
            runs.append(row)
    if not runs:
        return
    ids = [r.id for r in runs]
    if state.get("evaluate.sweep.run") not in ids:
        state["evaluate.sweep.run"] = ids[0]
    live = running_ids(jobs)
    names = {r.id: components.run_label(r, live) for r in runs}
    components.show_current_label("evaluate.sweep.run", names[state["evaluate.sweep.run"]])
    run_id = st.selectbox("Sweep", ids, format_func=names.__getitem__, key="evaluate.sweep.run")
    run = report.load_run(runtime.records, run_id)
    grid = sweep_grid(run.request)
    cells = sweep.results(run)
    if not any(c.answered for c in cells):
        st.caption("No answers yet: the heatmaps fill in as the sweep runs.")
        return
    frame = results_frame(cells)
    st.altair_chart(heatmap(frame, "correct", "Correct", ".0%", "greens"))
    st.altair_chart(heatmap(frame, "p50 (s)", "p50 latency (s)", ".1f", "oranges"))
    best = sweep.best(cells)
    if best is None or grid is None:
        return
    done = "" if run.status == "done" else " so far (the sweep is not finished)"
    st.success(
        f"Best{done}: **{components.md_escape(best.strategy)}**: {best.correct or 0:.0%} correct, "
        f"p50 {best.p50_s or 0:.1f} s over {best.answered} questions."
    )
    apply_best(runtime, grid, best, run_id, busy)


def apply_best(runtime: Runtime, grid: Grid, best: CellResult, run_id: int, busy: bool) -> None:
    """Write the best cell's top-k, threshold and template to the RAG preset; its chunking to a new knowledge base."""
    state = st.session_state
    settings = resources.settings()
    store = resources.store()
    cell = best.cell
    source = store.get_kb(grid.kb) if grid.kb else None
    new_chunking = source is not None and (source.chunk_size, source.chunk_overlap) != (
        cell.chunking.size, cell.chunking.overlap)  # fmt: skip
    target = ""
    if source is None:
        st.caption("The swept knowledge base is gone: applying sets the RAG preset only.")
    elif new_chunking:
        target = st.text_input(
            f"New knowledge base chunked {cell.chunking.label}",
            f"{grid.kb[:40]}-{cell.chunking.size}",
            key=f"evaluate.sweep.new_kb.{run_id}.{cell.chunking.label}",  # follows the best while a run fills in
            help=f"{grid.kb} is chunked {source.chunk_size}/{source.chunk_overlap}; applying makes this one from "
            "its documents and chooses it.",
        )  # fmt: skip
    if not st.button("✅ Apply the best", key="evaluate.sweep.apply", disabled=busy):
        return
    try:
        saved = save_rag_preset(
            settings.data_dir,
            RagPreset(cell.top_k, cell.threshold, cell.template, note=f"sweep #{run_id} on {grid.kb}"),
        )
        message = (
            f"RAG preset: top-{saved.top_k}, "
            + ("no threshold" if saved.score_threshold is None else f"score ≥ {saved.score_threshold:g}")
            + f", template {saved.template}."
        )
        if new_chunking and source is not None:
            bar = components.progress_callback(f"Re-chunking {grid.kb} into {target}…")
            made = sweep.apply_chunking(store, grid.kb, target, cell.chunking, progress=bar)
            state["kb"] = made.name
            message += f" New knowledge base {made.name} ({cell.chunking.label}) is now the chosen one."
        state["evaluate.notice"] = message
        state["evaluate.follow_preset"] = saved  # the columns take it before they are drawn
        st.rerun()
    except AppError as e:
        st.error(str(e))


def scratch_cleanup(busy: bool) -> None:
    """List the scratch knowledge bases and delete them on request."""
    try:
        scratch = sweep.scratch_kbs(resources.store())
    except AppError as e:
        st.caption(f"Scratch knowledge bases cannot be listed: {e}")
        return
    if not scratch:
        return
    c1, c2 = st.columns([5, 1], vertical_alignment="center")
    c1.caption(f"{len(scratch)} scratch knowledge base(s) kept for later sweeps: " + ", ".join(k.name for k in scratch))
    if c2.button("🗑️ Delete", key="evaluate.sweep.delete", disabled=busy, help="Sweeps build them again when needed"):
        try:
            gone = sweep.delete_scratch(resources.store())
            state = st.session_state
            state["evaluate.notice"] = f"Deleted {len(gone)} scratch knowledge base(s)."
            st.rerun()
        except AppError as e:
            st.error(str(e))
