"""The notice that the embedded SmolLM2 is an English model, for Chinese questions and knowledge bases."""

from __future__ import annotations

import pytest

from core.ingest import Upload, ingest
from core.language import holds_chinese
from core.models import BUNDLED_NAME
from core.store import Store
from core.strategies import Strategy
from ui.notices import chinese_model_notice

SMOL = f"llama.cpp:{BUNDLED_NAME}"
PE = Strategy("PE", SMOL, "Few-shot assistant")
FT = Strategy("FT", f"{SMOL}+leave-policy", "Few-shot assistant")
QWEN = Strategy("Qwen", "ollama:qwen2.5:1.5b", "Few-shot assistant")
ZH = "净水器的滤芯多久更换一次？"
EN = "How often is the filter replaced?"


def rag(kb: str, model: str = SMOL) -> Strategy:
    return Strategy("RAG", model, "RAG with citations", retrieval=True, kb=kb)


@pytest.mark.parametrize(
    ("strategies", "question", "flagged"),
    [
        ([PE], ZH, "PE answers"),
        ([PE, FT], ZH, "PE, FT answer"),  # a model fine-tuned from SmolLM2 is English too
        ([PE, QWEN], ZH, "PE answers"),
        ([QWEN], ZH, None),
        ([PE, FT], EN, None),
        ([PE], "", None),
    ],
)
def test_a_chinese_question_flags_the_columns_on_smollm2(
    strategies: list[Strategy], question: str, flagged: str | None
) -> None:
    notice = chinese_model_notice(strategies, [question], None)
    if flagged is None:
        assert notice is None
    else:
        assert notice is not None and flagged in notice and notice.startswith("This question is Chinese")
        assert "ollama pull qwen2.5:1.5b" in notice


def test_a_chinese_speaking_ollama_model_already_there_is_named() -> None:
    available = [SMOL, "ollama:llama3.2:1b", "ollama:qwen2.5:7b"]
    notice = chinese_model_notice([PE], [EN, ZH], None, available)  # one Chinese question in a set is enough
    assert notice is not None and "pick qwen2.5:7b (Ollama)" in notice and "ollama pull" not in notice
    assert "gemma" not in notice  # not listed: not named


def test_the_embedded_chinese_base_is_named_beside_ollama_when_listed() -> None:
    notice = chinese_model_notice([PE], [ZH], None, [SMOL, "llama.cpp:gemma-3-270m"])
    assert notice is not None and "ollama pull qwen2.5:1.5b" in notice  # the Ollama notice stays
    assert notice.endswith("without one, the embedded gemma-3-270m reads Chinese better.")


def test_a_chinese_knowledge_base_flags_the_retrieval_columns_on_smollm2(store: Store) -> None:
    # An English analyser does not hide Chinese text; an empty knowledge base with jieba is Chinese by intent.
    store.create_kb("zh", chunk_size=300, chunk_overlap=0, analyser="english")
    manual = "# 滤芯\n\n反渗透膜滤芯每三十六个月更换一次。客服电话为 400-820-1234。"
    ingest(store, "zh", [Upload("手册.md", manual.encode())])
    store.create_kb("jieba", chunk_size=300, chunk_overlap=0, analyser="chinese")
    store.create_kb("en", chunk_size=300, chunk_overlap=0)
    ingest(store, "en", [Upload("notes.md", b"The filter is replaced every 36 months.")])
    assert [holds_chinese(store, kb) for kb in ("zh", "jieba", "en")] == [True, True, False]
    notice = chinese_model_notice([PE, rag("zh")], [EN], store)
    assert notice is not None and notice.startswith("The knowledge base `zh` is Chinese, but RAG answers")
    assert chinese_model_notice([PE, rag("en")], [EN], store) is None
    assert chinese_model_notice([rag("jieba", QWEN.model)], [EN], store) is None
    assert chinese_model_notice([rag("gone")], [EN], store) is None  # reported where it is used
