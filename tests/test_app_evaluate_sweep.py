"""The Evaluate page's parameter sweep through AppTest: the real SmolLM2, MiniLM and the sample knowledge base."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import Settings
from core.embeddings import EmbeddingModel
from core.ingest import ingest
from core.rag_preset import load_rag_preset
from core.samples import sample_uploads
from core.store import Store
from core.strategies import RAG_TEMPLATE
from tests.helpers import open_app, shown

pytestmark = pytest.mark.slow


def open_page() -> AppTest:
    return open_app("app_pages/evaluate.py", timeout=180)


def test_without_documents_the_sweep_says_what_it_needs() -> None:
    at = open_page()
    assert any("RAG preset now: top-2 · no threshold" in c.value and "(built-in)" in shown(c.value) for c in at.caption)
    assert any("add documents on the Documents page first" in i.value for i in at.info)


def test_a_tiny_sweep_runs_in_the_background_and_applies_the_best(minilm: EmbeddingModel, data_dir: Path) -> None:
    with Store.open(Settings.from_env(), minilm) as store:
        store.create_kb("brackenridge", chunk_size=1000, chunk_overlap=150)
        ingest(store, "brackenridge", sample_uploads())
    at = open_page()
    assert at.text_input(key="evaluate.sweep.chunkings").value == "400/60, 800/120, 1200/180"
    assert at.multiselect(key="evaluate.sweep.top_k").value == [1, 2, 3]
    assert at.multiselect(key="evaluate.sweep.template").value == [RAG_TEMPLATE]
    assert at.button(key="evaluate.sweep.start").label == "🧪 Sweep (90 answers)"  # 9 settings x 10 questions
    at.slider(key="evaluate.col1.RAG.top_k").set_value(4).run()  # a column the user set: the best reaches it
    at.text_input(key="evaluate.sweep.chunkings").set_value("400/60, 800/120").run()
    at.multiselect(key="evaluate.sweep.top_k").set_value([2]).run()
    at.number_input(key="evaluate.sweep.limit").set_value(2).run()
    assert at.button(key="evaluate.sweep.start").label == "🧪 Sweep (4 answers)"
    assert any(
        "2 settings × 2 questions = **4 answers**" in c.value and "chunks to embed" in c.value for c in at.caption
    )
    at.button(key="evaluate.sweep.start").click().run()
    assert not at.exception, at.exception
    deadline = time.time() + 480
    while time.time() < deadline and not any(
        "· done" in str(o) for o in at.selectbox(key="evaluate.sweep.run").options
    ):
        time.sleep(2)
        at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="evaluate.sweep.run").options[0].endswith("· done")
    specs = [c.proto.spec for c in at.get("vega_lite_chart")]
    heatmaps = [s for s in specs if '"rect"' in s and '"facet"' in s]
    assert len(heatmaps) == 2 and "400/60" in heatmaps[0] and "800/120" in heatmaps[0]
    best = shown(next(s.value for s in at.success if s.value.startswith("Best")))
    assert "top-2 · no threshold" in best and "over 2 questions" in best, best
    chunking, label = ("400", "400/60") if "400/60" in best.split("·")[0] else ("800", "800/120")
    run_id = at.session_state["evaluate.sweep.run"]
    assert at.text_input(key=f"evaluate.sweep.new_kb.{run_id}.{label}").value == f"brackenridge-{chunking}"
    from ui import resources  # the app's own store: local mode lets one client hold the folder

    store = resources.store()
    assert [k.name for k in store.list_kbs()] == ["brackenridge"]
    assert sorted(k.name for k in store.list_kbs(scratch=True))[1:] == [
        "sweep--400-60--brackenridge",
        "sweep--800-120--brackenridge",
    ]
    at.button(key="evaluate.sweep.apply").click().run()
    assert not at.exception, at.exception
    saved = load_rag_preset(data_dir)
    assert saved is not None and (saved.top_k, saved.score_threshold, saved.template) == (2, None, RAG_TEMPLATE)
    assert at.session_state["kb"] == f"brackenridge-{chunking}"
    assert at.slider(key="evaluate.col1.RAG.top_k").value == 2
    assert sorted(k.name for k in store.list_kbs()) == ["brackenridge", f"brackenridge-{chunking}"]
    assert any(f"brackenridge-{chunking}" in shown(s.value) and "chosen" in s.value for s in at.success)
    assert any("RAG preset now: top-2" in c.value and "from sweep #" in shown(c.value) for c in at.caption)

    at.button(key="evaluate.sweep.delete").click().run()
    assert not at.exception, at.exception
    assert sorted(k.name for k in store.list_kbs(scratch=True)) == ["brackenridge", f"brackenridge-{chunking}"]
