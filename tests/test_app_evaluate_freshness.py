"""Evaluate's freshness section on the user's own knowledge base, through AppTest with the real model and store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import Settings
from core.embeddings import EmbeddingModel
from core.evaluation.fact_edit import _vector_json
from core.evaluation.questions import EvalQuestion
from core.evaluation.runner import EvalRequest, run_evaluation, start_run
from core.ingest import Upload, ingest
from core.models import EmbeddedEngine, ModelCatalog
from core.records import Records
from core.store import Store
from core.strategies import Runtime, presets
from core.template_library import TemplateLibrary
from tests.helpers import open_app

pytestmark = pytest.mark.slow


def _point(store: Store, kb: str) -> str:
    [doc] = store.list_documents(kb)
    record = store.get_point(kb, doc.doc_id, 0)
    assert record is not None
    return json.dumps({"payload": record.payload, "vector": _vector_json(record.vector)}, sort_keys=True)


def test_a_fact_of_the_users_own_document_is_changed_asked_again_and_put_back(
    data_dir: Path, minilm: EmbeddingModel
) -> None:
    settings = Settings.from_env()
    with Store.open(settings, minilm) as store:
        store.create_kb("farm", chunk_size=800, chunk_overlap=120)
        ingest(store, "farm", [Upload("barn.txt", b"The north barn holds 40 dairy cows.")])
        catalog = ModelCatalog(settings, EmbeddedEngine(), None)
        runtime = Runtime(store, TemplateLibrary(data_dir / "templates"), catalog, Records(data_dir / "records.sqlite"))
        rag = presets(runtime.models.available(), "farm")["RAG"].strategy
        question = EvalQuestion("f1", "How many cows are in the north barn?", "40")
        run_id = start_run(runtime, EvalRequest("farm questions", "farm-set", (question,), (rag,)))
        assert run_evaluation(runtime, run_id) == "done"

    from ui import resources

    at = open_app("app_pages/evaluate.py", timeout=300)
    # As the app's store serves it: local mode reloads vectors from disk re-normalised in their last bits, so the
    # point is compared within one process, before and after.
    before = _point(resources.store(), "farm")
    assert at.radio(key="evaluate.fresh.mode").value == "A fact of your knowledge base"
    fact = at.selectbox(key="evaluate.fresh.fact")
    assert fact.options == ["How many cows are in the north barn? — 40 (RAG)"], "RAG must answer it right first"
    assert any(m.value == "> The north barn holds **40** dairy cows\\." for m in at.markdown)  # the sentence, fact bold
    [change] = [t for t in at.text_input if t.key.startswith("evaluate.fresh.new.")]
    assert change.label == "Change “40” to" and change.value == "41"  # the proposed change
    change.set_value("44").run()
    at.button(key="evaluate.fresh.run").click().run()
    assert not at.exception, at.exception
    assert any("barn.txt is back as it was" in s.value for s in at.success)
    [table] = [d.value for d in at.dataframe if "new fact" in d.value.columns]
    row = table.iloc[0]
    assert (row["strategy"], row["old fact"], row["new fact"]) == ("RAG", "40", "44")
    assert row["sources state the new fact"]  # retrieval read the edited chunk at once
    assert "40" in row["before"]

    assert _point(resources.store(), "farm") == before  # byte for byte, payload and vectors
    assert not list((data_dir / "freshness").glob("*.json"))
    at.radio(key="evaluate.fresh.mode").set_value("The sample's two figures").run()
    assert any("Load the sample knowledge base" in i.value for i in at.info)
