"""The staged and iterative modes: evaluate RAG, train on its failures, evaluate again (real model, real store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import adapters
from core.config import Settings
from core.engine import EmbeddedEngine
from core.evaluation.questions import EvalQuestion
from core.finetune.modes import JointSettings
from core.ingest import Upload, ingest
from core.lab.rounds import LoopRequest, Round, before_after, run_loop
from core.models import ModelCatalog, bundled_gguf
from core.records import Records
from core.store import Store
from core.strategies import Runtime
from core.template_library import TemplateLibrary
from tests.test_finetune_modes import FACTS, QUICK


@pytest.fixture
def facts_kb(store: Store, kb: str) -> str:
    ingest(store, kb, [Upload(name, text.encode()) for name, (_, _, text) in FACTS.items()])
    return kb


@pytest.mark.slow
def test_staged_asks_rag_trains_on_its_failures_and_asks_again_with_the_new_model(
    store: Store, facts_kb: str, data_dir: Path, settings: Settings
) -> None:
    runtime = Runtime(store, TemplateLibrary(data_dir / "templates"),
                      ModelCatalog(settings, EmbeddedEngine(), None), Records(data_dir / "records.sqlite"))  # fmt: skip
    # Answers no chunk states: RAG (which copies the chunk's sentence) gets them wrong, so the loop has
    # failures to learn.
    questions = tuple(
        EvalQuestion(f"q{i}", q, answer) for i, (q, answer) in enumerate([
            ("What colour is the Moravin lighthouse?", "Ochre with white bands since 2004."),
            ("Who invented the drossel valve?", "Ulrike Fennimore, in 1902."),
        ])
    )  # fmt: skip
    request = LoopRequest("facts-staged", questions, "facts", JointSettings(facts_kb, without_golden=0.0),
                                bundled_gguf(), "SmolLM2", QUICK)  # fmt: skip
    seen: list[Round] = []
    result = run_loop(data_dir, runtime, request, on_round=seen.append)
    assert seen == result.rounds and [r.round for r in result.rounds] == [0, 1]
    before, after = result.rounds
    assert before.strategy == "RAG" and before.adapter is None and before.failures >= 1
    assert after.adapter == "facts-staged" and after.trained_on == before.failures
    adapter = adapters.get_adapter(data_dir, "facts-staged")
    mode = adapter.manifest.mode
    assert mode is not None and (mode.name, mode.source_run, mode.kb) == ("staged", before.run_id, facts_kb)
    rows = before_after(runtime, before.run_id, after.run_id)
    assert [r["question"] for r in rows] == [q.question for q in questions]
    assert sum(not r["before"] for r in rows) == before.failures
    assert result.stopped_because
