"""Sticky choices and the RAG preset reaching columns the user already has (ui.state, no Streamlit)."""

from __future__ import annotations

from typing import Any

from ui.state import SHADOW, follow_rag_preset, init_state, remembered


def test_an_applied_preset_reaches_remembered_and_drawn_rag_columns_only() -> None:
    saved: dict[str, Any] = {}
    state: dict[str, Any] = {}
    init_state(state, lambda: {"compare.col1.RAG.top_k": 4, "compare.col1.RAG.template": "Mine"})
    state["evaluate.col1.RAG.top_k"] = 5  # an Evaluate column drawn in this session
    state["evaluate.col0.PE.template"] = "Few-shot assistant"

    keys = follow_rag_preset(state, 2, None, "RAG with citations", saved.update)

    assert remembered(state, "compare.col1.RAG.top_k", 1) == 2
    assert remembered(state, "compare.col1.RAG.template", "") == "RAG with citations"
    assert state["evaluate.col1.RAG.top_k"] == 2
    assert state["evaluate.col0.PE.template"] == "Few-shot assistant"  # not a retrieval column
    assert "compare.col2.RAG.top_k" not in state[SHADOW]  # columns never set keep following the preset
    # Evaluate's columns are remembered too: the preset reaches what a refresh brings back.
    assert saved == {
        "compare.col1.RAG.top_k": 2,
        "compare.col1.RAG.template": "RAG with citations",
        "evaluate.col1.RAG.top_k": 2,
    }
    assert sorted(keys) == ["compare.col1.RAG.template", "compare.col1.RAG.top_k", "evaluate.col1.RAG.top_k"]


def test_a_threshold_of_none_sets_the_slider_to_zero() -> None:
    state: dict[str, Any] = {"evaluate.col2.FT+RAG.threshold": 0.4}
    follow_rag_preset(state, 3, None, "RAG with citations")
    assert state["evaluate.col2.FT+RAG.threshold"] == 0.0
