"""Notices that pages show about a choice the user made, worded in one place.

`chinese_model_notice` serves Compare (one question) and Evaluate (a question set) alike. This
module imports no Streamlit: a page shows the text with `st.warning`.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.errors import AppError
from core.language import holds_chinese
from core.models import BUNDLED_NAME, CHINESE_BASE, SUGGESTED_CHINESE_MODEL, chinese_speaking, is_english_only
from core.store import Store
from core.strategies import Strategy
from core.text import is_cjk


def chinese_model_notice(
    strategies: Iterable[Strategy],
    questions: Iterable[str],
    store: Store | None,
    available: Iterable[str] = (),
) -> str | None:
    """Why the embedded SmolLM2 will do badly here, and which model to pick instead; None when it will not matter.

    A strategy is flagged when it answers with SmolLM2 (or a model fine-tuned from it) and a question
    is Chinese or its retrieval reads a Chinese knowledge base (`core.language.holds_chinese`).

    Args:
        strategies: the strategies about to answer (Compare's columns, Evaluate's).
        questions: the question asked, or a question set's questions.
        store: for the language of the knowledge bases; None skips that check.
        available: model ids the pickers offer; a Chinese-speaking Ollama model among them is named.
    """
    chinese_question = any(is_cjk(q) for q in questions)
    chinese_kbs: dict[str, bool] = {}

    def reads_chinese(s: Strategy) -> bool:
        if not s.retrieval or not s.kb or store is None:
            return False
        if s.kb not in chinese_kbs:
            try:
                chinese_kbs[s.kb] = holds_chinese(store, s.kb)
            except AppError:
                chinese_kbs[s.kb] = False  # a missing knowledge base is reported where it is used
        return chinese_kbs[s.kb]

    flagged = [s for s in strategies if is_english_only(s.model) and (chinese_question or reads_chinese(s))]
    if not flagged:
        return None
    what = "This question is Chinese" if chinese_question else f"The knowledge base `{flagged[0].kb}` is Chinese"
    names = ", ".join(dict.fromkeys(s.name for s in flagged))
    speakers = chinese_speaking(list(available))
    if speakers:
        pick = f"pick {speakers[0].removeprefix('ollama:')} (Ollama) as the model in the column's settings"
    else:
        pick = (
            f"run Ollama with a model that speaks Chinese, such as Qwen2.5 (`ollama pull {SUGGESTED_CHINESE_MODEL}`), "
            "and pick it as the model in the column's settings"
        )
    embedded = f"llama.cpp:{CHINESE_BASE}"
    if embedded in available:
        pick += f"; without one, the embedded {CHINESE_BASE} reads Chinese better"
    return (
        f"{what}, but {names} answer{'s' if len(flagged) == 1 else ''} with the embedded {BUNDLED_NAME}, "
        f"a small English model: it reads Chinese poorly and often answers in English. For Chinese, {pick}."
    )
