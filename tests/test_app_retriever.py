"""The Retriever page through AppTest: real MiniLM, Qdrant local mode, a tiny training run."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import Settings
from core.embeddings import MULTILINGUAL_MODEL, EmbeddingCatalog, EmbeddingModel, tuned_names
from core.evaluation.questions import EvalQuestion, save_set
from core.ingest import Upload, ingest
from core.store import Store
from tests.helpers import open_app
from tests.test_retrieval_training import HANDBOOK
from ui import resources

pytestmark = pytest.mark.slow
QUESTIONS = [
    EvalQuestion("q1", "When does the north gate open?", "06:00", "harbour.md", 1),
    EvalQuestion("q2", "Which boats need a berth permit?", "over 12 metres", "harbour.md", 1),
    EvalQuestion("q3", "What does the fuel dock sell?", "diesel", "harbour.md", 1),
    EvalQuestion("q4", "Where is the ferry timetable?", "At the kiosk", "other.md", 1),  # names no document of the base
]


def start() -> AppTest:
    return open_app("app_pages/retriever.py", timeout=600)


@pytest.fixture
def harbour(data_dir: Path, minilm: EmbeddingModel) -> None:
    settings = Settings.from_env()
    with Store.open(settings, minilm) as store:
        store.create_kb("harbour", chunk_size=120, chunk_overlap=0)
        ingest(store, "harbour", [Upload("harbour.md", HANDBOOK)])
    save_set(data_dir, "harbour-questions", QUESTIONS)


def test_without_a_trainable_knowledge_base_the_page_says_which_can_be_trained(data_dir: Path) -> None:
    with Store.open(Settings.from_env(), EmbeddingCatalog().get(MULTILINGUAL_MODEL)) as store:
        store.create_kb("e5", chunk_size=300, chunk_overlap=0)
    at = start()
    assert "only those embedded with all-MiniLM-L6-v2" in at.info[0].value


def test_iterative_training_shows_scores_per_round_and_keeps_the_best(harbour: None, data_dir: Path) -> None:
    at = start()
    assert at.selectbox(key="retriever.set").options == ["harbour-questions"]
    assert "Training pairs:" in at.expander[0].label
    at.toggle(key="retriever.iterative").set_value(True).run()
    assert any("**Iterative** means rounds" in c.value for c in at.caption)  # said on the page, not only in help
    at.slider(key="retriever.rounds").set_value(2)
    at.number_input(key="retriever.per_round").set_value(4)
    at.text_input(key="retriever.name").input("port")
    at.button(key="retriever.train").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    rows = at.dataframe[-1].value.to_dict("records")
    assert rows[0][""] == "Before" and rows[1][""].startswith("Round 1 (4 new + 0 failed pairs")
    assert {"hit@1", "hit@3", "hit@5", "MRR"} <= set(rows[0])
    [kept] = [s.value for s in at.success]
    kept_round = 2 if "Kept round 2" in kept else 1
    assert f"`port-r{kept_round}`, embedded with `tuned:port-r{kept_round}`" in kept
    # Only the kept round stays: its tuned model and its re-embedded knowledge base.
    assert tuned_names(data_dir) == [f"tuned:port-r{kept_round}"]
    store = resources.store()  # the app's own (local mode allows one client per folder)
    assert sorted(kb.name for kb in store.list_kbs()) == ["harbour", f"port-r{kept_round}"]
    assert "06:00" in store.search(f"port-r{kept_round}", "When does the north gate open?", k=1)[0].text
    at.button(key="retriever.use").click().run()
    assert at.session_state["kb"] == f"port-r{kept_round}"
    assert any(f"`port-r{kept_round}`: embeddings `tuned:port-r{kept_round}`" in c.value for c in at.sidebar.caption)
