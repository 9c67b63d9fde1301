"""Compare-page pieces: a column's strategy settings and how an answer is shown."""

from __future__ import annotations

import re
from dataclasses import replace

import streamlit as st

from core.errors import AppError
from core.finetune.datasets import Correction, add_correction
from core.models import ModelInfo
from core.strategies import Answer, Preset, Strategy
from ui import components, resources

PRESET_ORDER = ("PE", "RAG", "FT", "FT+RAG")


def column_settings(
    i: int, presets: dict[str, Preset], models: list[ModelInfo], templates: list[str], kbs: list[str]
) -> Strategy | None:
    """Widgets for column i; each preset keeps its own settings. None when the preset cannot run."""
    name = st.selectbox("Strategy", PRESET_ORDER, key=f"compare.col{i}.preset")
    preset = presets[name]
    if preset.disabled_reason:
        st.info(preset.disabled_reason)
        return None
    s = preset.strategy
    key = f"compare.col{i}.{name}"
    labels = {m.id: m.label for m in models}
    with st.expander("Settings"):
        model = st.selectbox(
            "Model",
            list(labels),
            index=_index(list(labels), s.model),
            format_func=labels.__getitem__,
            key=f"{key}.model",
        )
        template = st.selectbox("Template", templates, index=_index(templates, s.template), key=f"{key}.template")
        retrieval = st.toggle("Retrieval", value=s.retrieval, key=f"{key}.retrieval")
        kb, top_k, threshold = s.kb, s.top_k, s.score_threshold
        if retrieval:
            if not kbs:
                st.warning("No knowledge base yet: add documents on the Documents page.")
                return None
            kb = st.selectbox("Knowledge base", kbs, index=_index(kbs, s.kb), key=f"{key}.kb")
            top_k = st.slider("Top-k", 1, 10, s.top_k, key=f"{key}.top_k")
            threshold = (
                st.slider(
                    "Score threshold",
                    0.0,
                    1.0,
                    0.0,
                    0.05,
                    key=f"{key}.threshold",
                    help="Drop chunks scoring below this (0 keeps all).",
                )
                or None
            )
        temperature = st.slider("Temperature", 0.0, 1.5, s.temperature, 0.1, key=f"{key}.temperature")
        max_tokens = st.slider("Max answer tokens", 32, 1024, s.max_tokens, 32, key=f"{key}.max_tokens")
    return replace(
        s,
        model=model,
        template=template,
        retrieval=retrieval,
        kb=kb,
        top_k=top_k,
        score_threshold=threshold,
        temperature=temperature,
        max_tokens=max_tokens,
    )


def _index(options: list[str], value: str | None) -> int:
    return options.index(value) if value in options else 0


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
    for warning in answer.warnings:
        st.warning(warning)
    ttft = f"{answer.ttft_s:.2f} s" if answer.ttft_s is not None else "–"
    tokens = f"{answer.prompt_tokens or 0} in / {answer.completion_tokens or 0} out"
    waited = f" · waited {answer.queued_s:.1f} s for the model" if answer.queued_s >= 0.1 else ""
    st.caption(f"⏱️ first token {ttft} · total {answer.total_s:.2f} s · 🔢 {tokens}{waited}")
    s = answer.strategy
    st.caption(
        f"{s.model} · {s.template} v{answer.template_version}" + (f" · {s.kb} top-{s.top_k}" if s.retrieval else "")
    )
    if s.retrieval:
        st.markdown(f"**Sources** ({len(answer.sources)})")
        for n, hit in enumerate(answer.sources, start=1):
            st.markdown(f'<span id="src-{i}-{n}"></span>', unsafe_allow_html=True)  # our own anchor, no user text
            components.hit_card(n, hit, expanded=False)
    with st.expander("Exact prompt"):
        st.code(answer.prompt or "(not sent)", language=None, wrap_lines=True)
    wrong_answer(i, answer)


def wrong_answer(i: int, answer: Answer) -> None:
    """Store a correction for fine-tuning (the staged loop: collect failures, train on them)."""
    with st.popover("👎 Wrong answer"):
        corrected = st.text_area("Correct answer", key=f"compare.col{i}.corrected")
        dataset = st.text_input("Dataset", value="corrections", key=f"compare.col{i}.dataset")
        if st.button("Save correction", key=f"compare.col{i}.save_correction", disabled=not corrected.strip()):
            try:
                path = add_correction(
                    resources.settings().data_dir / "datasets",
                    dataset,
                    Correction(answer.question, corrected, answer.text, answer.strategy.name, answer.strategy.model),
                )
            except AppError as e:
                st.error(str(e))
            else:
                st.success(f"Saved to dataset {path.stem}.")
