"""Evaluate's freshness section: change a fact in the user's own knowledge base (or the sample's), re-ask, restore."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import AppError
from core.evaluation.fact_edit import BACKUPS, OwnFact, own_facts, restore_pending
from core.evaluation.freshness import FreshnessRow, followed_share, run_fact_change, run_freshness
from core.evaluation.report import RunData
from core.samples import SAMPLE_KB_NAME
from core.strategies import Preset, Runtime, Strategy
from ui import components

COLUMNS = {"old_answer": "old fact", "new_answer": "new fact", "retrieved_new": "sources state the new fact"}
MODES = ("A fact of your knowledge base", "The sample's two figures")


def freshness_frame(rows: Sequence[FreshnessRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [asdict(r) | {"follows new fact": r.followed, "repeats old fact": r.repeated_old} for r in rows]
    ).rename(columns=COLUMNS)


def section(
    runtime: Runtime, available: dict[str, Preset], kbs: list[str], run: RunData, data_dir: Path
) -> list[FreshnessRow]:
    """Run the experiment on a fact of the user's knowledge base or on the sample; its rows stay in the session."""
    state = st.session_state
    backups = data_dir / BACKUPS
    if runtime.store is not None:
        try:
            for restored in restore_pending(runtime.store, backups):
                st.warning(f"Put back a chunk of {restored} that an interrupted freshness run had left edited.")
        except AppError as e:
            st.error(str(e))
    mode = st.radio("Experiment", MODES, horizontal=True, key="evaluate.fresh.mode")
    if mode == MODES[0]:
        _own_fact(runtime, available, kbs, run, backups)
    else:
        _sample(runtime, available, kbs)
    rows = [FreshnessRow(**d) for d in state["evaluate.freshness"] or []]
    if rows:
        st.dataframe(freshness_frame(rows), hide_index=True, width="stretch")
        for name, share in followed_share(rows).items():
            st.markdown(f"- **{components.md_escape(name)}** followed {share:.0%} of the changed facts.")
    return rows


def _quoted(fact: OwnFact) -> str:
    esc, end = components.md_escape, fact.at + len(fact.old)
    return f"> {esc(fact.sentence[: fact.at])}**{esc(fact.old)}**{esc(fact.sentence[end:])}"


def _askers(fact: OwnFact, run: RunData, available: dict[str, Preset]) -> list[Strategy]:
    """The run's strategy that answered right, then the newest fine-tuned model alone and with retrieval."""
    chosen = [next(s for s in run.strategies if s.name == fact.strategy)]
    for name in ("FT", "FT+RAG"):
        preset = available[name]
        if preset.disabled_reason is None and all(s.name != name for s in chosen):
            chosen.append(replace(preset.strategy, kb=fact.kb) if preset.strategy.retrieval else preset.strategy)
    return chosen


def _own_fact(runtime: Runtime, available: dict[str, Preset], kbs: list[str], run: RunData, backups: Path) -> None:
    st.caption(
        "Pick a question that RAG answered right in the run shown under Results. The app changes the fact in a "
        "copy of the chunk the answer came from, asks RAG and the newest fine-tuned model again, shows the answers "
        "before and after, and puts the original chunk back as it was, even if the run stops or fails."
    )
    facts = [f for kb in dict.fromkeys(s.kb for s in run.strategies if s.retrieval and s.kb in kbs)
             for f in own_facts(run, str(kb))]  # fmt: skip
    if not facts:
        st.info(
            "No answer with retrieval in the run shown is right and quoted from a source sentence. Evaluate your "
            "own questions with RAG on your knowledge base (sections 1 to 3), then pick one here."
        )
        return
    labels = [f"{f.question} — {f.expected} ({f.strategy})" for f in facts]
    i = st.selectbox("Question", range(len(facts)), format_func=labels.__getitem__, key="evaluate.fresh.fact")
    fact = facts[i]
    st.markdown(f"From **{components.md_escape(fact.filename)}**, page {fact.page}, part {fact.chunk_index + 1} "
                f"of knowledge base **{components.md_escape(fact.kb)}**:")  # fmt: skip
    st.markdown(_quoted(fact))
    mark = hashlib.sha256(f"{fact.kb}/{fact.question}/{fact.sentence}".encode()).hexdigest()[:8]  # one box a fact
    new = st.text_input(f"Change “{fact.old}” to", value=fact.new, key=f"evaluate.fresh.new.{mark}")
    askers = _askers(fact, run, available)
    st.caption("Asks " + ", ".join(s.name for s in askers) + " before and after the change.")
    if available["FT"].disabled_reason:
        st.caption(f"{available['FT'].disabled_reason} Until then only retrieval is compared.")
    if st.button("🧪 Change the fact, ask again, put it back", key="evaluate.fresh.run"):
        bar = components.progress_callback("Freshness experiment…")
        try:
            rows = run_fact_change(runtime, fact, new, askers, backups, progress=bar)
            st.session_state["evaluate.freshness"] = [asdict(r) for r in rows]
            st.success(f"{fact.filename} is back as it was: part {fact.chunk_index + 1} restored byte for byte.")
        except AppError as e:
            st.error(str(e))


def _sample(runtime: Runtime, available: dict[str, Preset], kbs: list[str]) -> None:
    st.caption(
        "Changes two figures in the sample support policy (the warranty's length, the TideCare Plus price), "
        "re-ingests it, asks those questions with RAG and the newest fine-tuned model before and after, "
        "then restores the document."
    )
    if SAMPLE_KB_NAME not in kbs:
        st.info("Load the sample knowledge base on the Documents page first.")
        return
    chosen = [replace(available["RAG"].strategy, kb=SAMPLE_KB_NAME)]
    for name in ("FT", "FT+RAG"):
        if available[name].disabled_reason is None:
            chosen.append(replace(available[name].strategy, kb=SAMPLE_KB_NAME))
    if st.button("🧪 Run the freshness experiment", key="evaluate.freshness_run"):
        bar = components.progress_callback("Freshness experiment…")
        try:
            rows = run_freshness(runtime, SAMPLE_KB_NAME, chosen, progress=bar)
            st.session_state["evaluate.freshness"] = [asdict(r) for r in rows]
        except AppError as e:
            st.error(str(e))
