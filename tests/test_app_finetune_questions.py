"""The Fine-tune page's questions drawn from a knowledge base, by rules or by an Ollama model (AppTest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from streamlit.testing.v1 import AppTest
from werkzeug import Request, Response

from core.config import Settings
from core.embeddings import EmbeddingModel
from core.ingest import Upload, ingest
from core.store import Store
from tests.test_ollama import DONE, TAGS, chunk, ndjson, serve_show

pytestmark = pytest.mark.slow
PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "finetune.py")
MANUAL = b"""# HX4 pump

## Maintenance
The HX4 pump must be recalibrated every six months. Support is reached at extension 4410.
It is reviewed every January.
"""


@pytest.fixture
def kb_loaded(data_dir: Path, minilm: EmbeddingModel) -> None:
    with Store.open(Settings.from_env(), minilm) as store:
        store.create_kb("pumps", chunk_size=800, chunk_overlap=120)
        ingest(store, "pumps", [Upload("hx4_manual.md", MANUAL)])


def open_kb_source() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    at.radio(key="finetune.source").set_value("From a knowledge base")
    at.run()
    assert not at.exception
    return at


def test_generated_pairs_are_questions_with_a_short_answer(kb_loaded: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "off")
    at = open_kb_source()
    assert not [b for b in at.button if b.key == "finetune.write"]  # no Ollama, no offer
    at.button(key="finetune.generate").click()
    at.run()
    assert not at.exception
    pump = "The HX4 pump must be recalibrated every six months."
    assert at.session_state["finetune.pairs"] == [
        {"question": "How often must the HX4 pump be recalibrated?", "answer": "every six months", "evidence": pump},
        {"question": "What extension is support reached at?", "answer": "4410",
         "evidence": "Support is reached at extension 4410."},
    ]  # fmt: skip
    assert "Generated 2 questions from pumps" in at.info[0].value
    # The editor shows each pair's sentence (joint training learns it) beside question and answer.
    editor = at.dataframe[-1].value
    assert list(editor.columns) == ["question", "answer", "evidence"]
    assert editor["evidence"].tolist()[0] == pump


def test_joint_trains_pairs_drawn_from_a_knowledge_base_for_one_epoch_and_says_why(
    kb_loaded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drawn pairs were written from the sentence retrieval puts first: more epochs teach copying it."""
    monkeypatch.setenv("OLLAMA_HOST", "off")
    at = open_kb_source()
    at.button(key="finetune.generate").click()
    at.run()
    assert at.radio(key="finetune.mode").value == "joint"
    assert at.number_input(key="finetune.settings.retrieval.drawn.epochs").value == 1
    assert "drawn from a knowledge base, so Joint trains them for one epoch" in " ".join(c.value for c in at.caption)
    at.radio(key="finetune.source").set_value("Sample facts")
    at.run()
    at.button(key="finetune.load_sample").click()
    at.run()
    assert not at.exception
    assert at.number_input(key="finetune.settings.retrieval.epochs").value == 3  # the user's own facts: learned
    assert "so Joint trains them for one epoch" not in " ".join(c.value for c in at.caption)


def test_an_ollama_model_writes_the_questions_into_the_editor(
    kb_loaded: None, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = {"pairs": [{"sentence": 2, "question": "Which extension reaches support?", "answer": "4410"}]}

    def chat(request: Request) -> Response:
        assert (
            "1. The HX4 pump must be recalibrated every six months."
            in json.loads(request.data)["messages"][1]["content"]
        )
        return Response(ndjson(chunk(json.dumps(reply)), DONE), content_type="application/x-ndjson")

    httpserver.expect_request("/api/tags", method="GET").respond_with_json(TAGS)
    serve_show(httpserver)
    httpserver.expect_request("/api/chat", method="POST").respond_with_handler(chat)
    monkeypatch.setenv("OLLAMA_HOST", httpserver.url_for("/").rstrip("/"))
    at = open_kb_source()
    write = at.button(key="finetune.write")
    assert write.label == "Write the questions with llama3.2:1b"
    write.click()
    at.run()
    assert not at.exception
    assert at.session_state["finetune.pairs"] == [
        {
            "question": "Which extension reaches support?",
            "answer": "4410",
            "evidence": "Support is reached at extension 4410.",
        }
    ]
    assert at.text_input(key="finetune.name").value == "pumps-questions"
    assert "llama3.2:1b wrote 1 questions from pumps; review below." in at.info[0].value


def test_when_no_question_comes_out_the_page_says_why(data_dir: Path, minilm: EmbeddingModel) -> None:
    with Store.open(Settings.from_env(), minilm) as store:
        store.create_kb("commands", chunk_size=800, chunk_overlap=120)
        ingest(store, "commands", [Upload("commands.md", b"# Commands\n\n- apt-get update\n- apt-get upgrade\n")])
    at = open_kb_source()
    at.button(key="finetune.generate").click()
    at.run()
    assert not at.exception
    [warning] = [w.value for w in at.warning if w.value.startswith("No questions from commands.")]
    assert "None of its" in warning and "Ollama model write the questions" in warning
    assert not at.session_state["finetune.pairs"]  # nothing loaded, no "Generated 0 questions" kept


def test_a_chinese_knowledge_base_says_how_its_questions_are_drawn_and_draws_them(
    data_dir: Path, minilm: EmbeddingModel
) -> None:
    with Store.open(Settings.from_env(), minilm) as store:
        store.create_kb("notes", chunk_size=800, chunk_overlap=120)
        store.create_kb("notes-zh", chunk_size=800, chunk_overlap=120, analyser="chinese")  # as a Chinese one is made
        manual = "# 员工手册\n\n公司目前共有员工386人。年假最多可结转五天至下一年度。\n".encode()
        ingest(store, "notes-zh", [Upload("员工手册.md", manual)])
    at = open_kb_source()
    assert at.selectbox(key="finetune.kb").value == "notes"
    assert not [c for c in at.caption if "Chinese sentences are asked" in c.value]
    at.selectbox(key="finetune.kb").set_value("notes-zh").run()
    assert [c for c in at.caption if "Chinese sentences are asked" in c.value and "多少人" in c.value]
    at.button(key="finetune.generate").click()
    at.run()
    assert not at.exception
    assert [(p["question"], p["answer"]) for p in at.session_state["finetune.pairs"]] == [
        ("公司目前共有员工多少人？", "386人"),
        ("年假最多可结转多少天至下一年度？", "五天"),
    ]
    assert at.radio(key="finetune.mode").value == "joint"  # drawn pairs, a knowledge base: Joint, one epoch
    # On the base that reads Chinese (Gemma, where installed: its settings are the completion form's).
    [epochs] = [n for n in at.number_input if n.key.endswith(".drawn.epochs")]
    assert epochs.value == 1


def test_the_generated_notice_goes_once_its_source_is_no_longer_shown(kb_loaded: None) -> None:
    """The notice "Generated … from <kb>" stayed on the page after its source picker had reset (issue 24)."""
    from tests.helpers import open_app

    at = open_app("app_pages/finetune.py")
    at.radio(key="finetune.source").set_value("From a knowledge base").run()
    at.button(key="finetune.generate").click().run()
    assert any("Generated 2 questions from pumps" in i.value for i in at.info)
    at.switch_page("app_pages/home.py").run()
    at.switch_page("app_pages/finetune.py").run()  # the picker is drawn afresh: back to its first source
    assert not at.exception
    assert at.radio(key="finetune.source").value == "Sample facts"
    assert not [i.value for i in at.info if "Generated" in i.value]
    assert len(at.session_state["finetune.pairs"]) == 2  # the pairs being edited stay
    at.radio(key="finetune.source").set_value("From a knowledge base").run()
    assert not [i.value for i in at.info if "Generated" in i.value]  # not brought back either
