"""Compare-page pieces: a column's strategy settings and how an answer is shown."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import streamlit as st

from core.errors import AppError
from core.evaluation.support import Embed, Support, supporting_sentences
from core.finetune.datasets import Correction, add_correction
from core.models import ModelInfo
from core.strategies import PRESET_ORDER, Answer, Preset, Strategy
from ui import components, resources
from ui.state import index_of, remembered


def column_settings(
    i: int, presets: dict[str, Preset], models: list[ModelInfo], templates: list[str], kb: str | None
) -> Strategy | None:
    """Widgets for column i; each preset keeps its own settings. None when the preset cannot run.

    Retrieval searches `kb`, the page's one knowledge base: a column keeps no other of its own.

    Values are seeded through session state (`state.default`), never as widget defaults, so that the
    choices remembered across pages and refreshes are what the widgets show.
    """
    state = st.session_state
    first = remembered(state, f"compare.col{i}.preset", PRESET_ORDER[i % 4], list(PRESET_ORDER))
    name = st.selectbox(
        "Strategy", PRESET_ORDER, index=index_of(list(PRESET_ORDER), first), key=f"compare.col{i}.preset"
    )
    preset = presets[name]
    if preset.disabled_reason:
        with st.container(key=f"compare-placeholder-{i}"):
            st.info(preset.disabled_reason)
        return None
    s = preset.strategy
    key = f"compare.col{i}.{name}"
    labels = {m.id: m.label for m in models}
    ids = list(labels)

    def was(field: str, default: Any, options: list[Any] | None = None) -> Any:
        return remembered(state, f"{key}.{field}", default, options)

    with st.expander("Settings"):
        model = st.selectbox(
            "Model", ids, index=index_of(ids, was("model", s.model, ids)), format_func=labels.__getitem__,
            key=f"{key}.model",
        )  # fmt: skip
        template = st.selectbox(
            "Template", templates, index=index_of(templates, was("template", s.template, templates)),
            key=f"{key}.template",
        )  # fmt: skip
        retrieval = st.toggle("Retrieval", value=was("retrieval", s.retrieval), key=f"{key}.retrieval")
        top_k, threshold, mode = s.top_k, s.score_threshold, s.retrieval_mode
        if retrieval:
            if kb is None:
                st.warning("No knowledge base yet: add documents on the Documents page.")
                return None
            top_k = st.slider("Top-k", 1, 10, was("top_k", s.top_k), key=f"{key}.top_k")
            mode = st.selectbox(
                "Search",
                [None, "hybrid", "dense", "sparse"],
                format_func=lambda m: m or "the knowledge base's own",
                key=f"{key}.retrieval_mode",
                help="Dense: by meaning (embeddings). Sparse: by keywords (BM25). Hybrid: both, fused.",
            )
            threshold = (
                st.slider(
                    "Score threshold",
                    0.0,
                    1.0,
                    was("threshold", 0.0),
                    step=0.05,
                    key=f"{key}.threshold",
                    help="Drop chunks scoring below this (0 keeps all).",
                )  # fmt: skip
                or None
            )
        temperature = st.slider(
            "Temperature", 0.0, 1.5, was("temperature", s.temperature), 0.1, key=f"{key}.temperature"
        )
        max_tokens = st.slider(
            "Max answer tokens", 32, 1024, was("max_tokens", s.max_tokens), 32, key=f"{key}.max_tokens"
        )
    if retrieval:
        st.caption(f"📚 {kb} · top-{top_k}")
    return replace(
        s,
        model=model,
        template=template,
        retrieval=retrieval,
        kb=kb if retrieval else s.kb,
        top_k=top_k,
        score_threshold=threshold,
        retrieval_mode=mode,
        temperature=temperature,
        max_tokens=max_tokens,
    )


def answer_markdown(text: str, column: int, n_sources: int) -> str:
    """Model text as Markdown: citations link to their sources; remote images are not loaded."""
    safe = text.replace("![", "!\\[")

    def link(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return f"[\\[{n}\\]](#src-{column}-{n})" if 1 <= n <= n_sources else m.group(0)

    return re.sub(r"\[(\d{1,2})\]", link, safe)


def render_answer(i: int, answer: Answer) -> None:
    if answer.text:
        st.markdown(answer_markdown(answer.text, i, len(answer.sources)))
    if answer.error:
        st.error(answer.error)
    # Stopped (the page has only the text so far) or refused before reaching the model: no figures to show.
    if answer.error and not answer.prompt:
        if answer.text:
            st.caption(f"⏱️ stopped after {answer.total_s:.2f} s")
        return
    if answer.strategy.retrieval and answer.text.strip() and not answer.error:
        support_lines(answer)
    for warning in answer.warnings:
        st.warning(warning)
    ttft = f"{answer.ttft_s:.2f} s" if answer.ttft_s is not None else "–"
    tokens = f"{answer.prompt_tokens or 0} in / {answer.completion_tokens or 0} out"
    if answer.tokens_counted:
        tokens += " (counted by the app: the server reported no usage)"
    waited = f" · waited {answer.queued_s:.1f} s for the model" if answer.queued_s >= 0.1 else ""
    st.caption(f"⏱️ first token {ttft} · total {answer.total_s:.2f} s · 🔢 {tokens}{waited}")
    s = answer.strategy
    st.caption(f"{s.model} · {s.template} v{answer.template_version}")
    if s.retrieval:
        supports = supported_by(answer)
        # The citation anchors ride on the heading: an element of their own showed as an empty block.
        anchors = "".join(f'<span id="src-{i}-{n}"></span>' for n in range(1, len(answer.sources) + 1))
        st.markdown(f"{anchors}**Sources** ({len(answer.sources)}) from knowledge base "
                    f"**{components.md_escape(s.kb or '')}**, top-{s.top_k}", unsafe_allow_html=True)  # fmt: skip
        marked = {sp.chunk: (sp.start, sp.end) for sp in reversed(supports)}
        for n, hit in enumerate(answer.sources, start=1):
            components.hit_card(n, hit, expanded=n - 1 in marked, highlight=marked.get(n - 1))
    with st.expander("Exact prompt"):
        st.code(answer.prompt or "(not sent)", language=None, wrap_lines=True)
    wrong_answer(i, answer)


@st.cache_data(show_spinner=False, max_entries=256)
def _supports(answer: str, question: str, chunks: tuple[str, ...]) -> list[Support]:
    try:
        embed: Embed | None = resources.embedder().embeddings.embed_documents
    except AppError:
        embed = None  # words alone decide
    return supporting_sentences(answer, question, chunks, embed)


def supported_by(answer: Answer) -> list[Support]:
    """The retrieved sentences that support a RAG answer (computed once per answer, not on every rerun)."""
    if not answer.sources or not answer.text.strip() or answer.error:
        return []
    return _supports(answer.text, answer.question, tuple(h.text for h in answer.sources))


def support_lines(answer: Answer) -> None:
    """Under a RAG answer: which sentence of which source supports it, or plainly that none does."""
    supports = supported_by(answer)
    if not answer.sources:
        return
    if not supports:
        st.caption("⚠️ Not supported: no sentence of the retrieved sources supports this answer.")
        return
    for sp in supports:
        hit = answer.sources[sp.chunk]
        sentence = components.md_escape(" ".join(sp.sentence.split()))
        st.markdown(f"**Supported by:** {components.md_escape(hit.filename)}, p. {hit.page} — «{sentence}»")


def wrong_answer(i: int, answer: Answer) -> None:
    """Store a correction for fine-tuning (the staged loop: collect failures, train on them).

    A form, so that the text typed and the click on Save arrive together: with a plain text area the
    first click only took the focus away, reran the page, closed the popover and saved nothing.
    """
    with st.popover("👎 Wrong answer"), st.form(f"compare.col{i}.correction", border=False):
        corrected = st.text_area("Correct answer", key=f"compare.col{i}.corrected")
        dataset = st.text_input("Dataset", value="corrections", key=f"compare.col{i}.dataset")
        if st.form_submit_button("Save correction", key=f"compare.col{i}.save_correction"):
            if not corrected.strip():
                st.warning("Type the correct answer first.")
                return
            try:
                path = add_correction(
                    resources.settings().data_dir / "datasets",
                    dataset,
                    Correction(answer.question, corrected, answer.text, answer.strategy.name, answer.strategy.model),
                )
            except AppError as e:
                st.error(str(e))
            else:
                st.toast(f"Saved the correction to dataset {path.stem}.", icon="✅")
                st.success(f"Saved to dataset {path.stem}.")
