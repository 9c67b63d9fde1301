"""The one strategy editor of Compare's and Evaluate's columns: preset, model, template, retrieval, generation.

Values are seeded through `ui.state.remembered`, never through session state, so the choices remembered
across pages and refreshes are what the widgets show. The pages differ only in what `EditorSpec` says.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import streamlit as st

from core.models import ModelInfo
from core.strategies import PRESET_ORDER, Preset, Strategy
from ui import components
from ui.state import index_of, remembered

SEARCH_MODES: list[str | None] = [None, "hybrid", "dense", "sparse"]


@dataclass(frozen=True)
class EditorSpec:
    """What one page's columns differ in; everything else is the one editor."""

    page: str  # widget keys read "<page>.col<i>.<preset>.<field>"
    kbs: tuple[str, ...] | None = None  # each column picks its knowledge base among these; None: the page's one
    max_tokens: tuple[int, int, int] = (32, 1024, 32)  # slider: least, most, step
    default_max_tokens: int | None = None  # None: the preset's
    tuned_models_for_ft: bool = False  # FT columns offer the fine-tuned models only
    named_by_settings: bool = False  # the column's name says its top-k and adapter (Evaluate's matrix columns)


COMPARE = EditorSpec("compare")


def evaluate_spec(kbs: list[str]) -> EditorSpec:
    """Evaluate's columns: each picks its knowledge base, answers short, and is named after what it changed."""
    return EditorSpec("evaluate", tuple(kbs), (16, 512, 16), 128, tuned_models_for_ft=True, named_by_settings=True)


class _Field:
    """A column's remembered values: `was("top_k", 3)` is what the widget was left at, else 3."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, field: str, default: Any, options: list[Any] | None = None) -> Any:
        return remembered(st.session_state, f"{self.key}.{field}", default, options)


def strategy_editor(
    spec: EditorSpec, i: int, presets: dict[str, Preset], models: list[ModelInfo], templates: list[str],
    kb: str | None,
) -> Strategy | None:  # fmt: skip
    """Widgets for column i; each preset keeps its own settings. None when the preset cannot run.

    `kb` is the page's knowledge base: what retrieval searches (Compare), or the column's first choice (Evaluate).
    """
    order = list(PRESET_ORDER)
    first = remembered(st.session_state, f"{spec.page}.col{i}.preset", order[i % 4], order)
    kind = st.selectbox("Strategy", order, index=index_of(order, first), key=f"{spec.page}.col{i}.preset")
    preset = presets[kind]
    if preset.disabled_reason:
        st.container(key=f"{spec.page}-placeholder-{i}").info(preset.disabled_reason)
        return None
    s = preset.strategy
    was = _Field(f"{spec.page}.col{i}.{kind}")
    labels = {m.id: m.label for m in models if m.fine_tuned or kind in ("PE", "RAG") or not spec.tuned_models_for_ft}
    ids = list(labels)
    with st.expander("Settings"):
        model = st.selectbox("Model", ids, index=index_of(ids, was("model", s.model, ids)),
                             format_func=labels.__getitem__, key=f"{was.key}.model")  # fmt: skip
        at = index_of(templates, was("template", s.template, templates))
        template = st.selectbox("Template", templates, index=at, key=f"{was.key}.template")
        retrieval = st.toggle("Retrieval", value=was("retrieval", s.retrieval), key=f"{was.key}.retrieval")
        searched = _retrieval(spec, was, s, kb) if retrieval else replace(s, retrieval=False)
        if searched is None:
            return None
        temperature = st.slider("Temperature", 0.0, 1.5, was("temperature", s.temperature), 0.1,
                                key=f"{was.key}.temperature")  # fmt: skip
        least, most, step = spec.max_tokens
        tokens = was("max_tokens", spec.default_max_tokens or s.max_tokens)
        max_tokens = st.slider("Max answer tokens", least, most, tokens, step, key=f"{was.key}.max_tokens")
    strategy = replace(searched, model=model, template=template, temperature=temperature, max_tokens=max_tokens)
    if not spec.named_by_settings:
        if retrieval:
            st.caption(f"📚 {strategy.kb} · top-{strategy.top_k}")
        return strategy
    strategy = replace(strategy, name=column_name(kind, s, strategy, labels))
    st.caption(f"Column name: **{components.md_escape(strategy.name)}**")
    return strategy


def _retrieval(spec: EditorSpec, was: _Field, s: Strategy, kb: str | None) -> Strategy | None:
    """The retrieval widgets (knowledge base, top-k, search mode, threshold); None without a knowledge base."""
    if (not spec.kbs) if spec.kbs is not None else kb is None:
        st.warning("No knowledge base yet: add documents on the Documents page.")
        return None
    if spec.kbs is not None:  # the column's own, not remembered: a refresh follows the page's knowledge base
        kbs = list(spec.kbs)
        kb = st.selectbox("Knowledge base", kbs, index=index_of(kbs, s.kb), key=f"{was.key}.kb")
    top_k = st.slider("Top-k", 1, 10, was("top_k", s.top_k), key=f"{was.key}.top_k")
    mode = st.selectbox(
        "Search",
        SEARCH_MODES,
        index=index_of(SEARCH_MODES, was("retrieval_mode", s.retrieval_mode, SEARCH_MODES)),
        format_func=lambda m: m or "the knowledge base's own",
        key=f"{was.key}.retrieval_mode",
        help="Dense: by meaning (embeddings). Sparse: by keywords (BM25). Hybrid: both, fused.",
    )
    threshold = st.slider("Score threshold", 0.0, 1.0, was("threshold", 0.0), step=0.05, key=f"{was.key}.threshold",
                          help="Drop chunks scoring below this (0 keeps all).")  # fmt: skip
    return replace(s, retrieval=True, kb=kb, top_k=top_k, retrieval_mode=mode, score_threshold=threshold or None)


def column_name(kind: str, preset: Strategy, s: Strategy, labels: dict[str, str]) -> str:
    """An Evaluate column's name: the preset, then what it changed that a reader of the matrix needs to know."""
    name = kind
    if s.retrieval and kind in ("RAG", "FT+RAG"):
        name += f" k={s.top_k}" if s.top_k != preset.top_k else ""
        name += f" {s.retrieval_mode}" if s.retrieval_mode else ""
    if s.model != preset.model and kind in ("FT", "FT+RAG"):
        name += f" ({labels[s.model].split('+')[-1].split(' ')[0]})"
    return name
