"""The Documents page: knowledge bases that follow their documents' language (AppTest, real store and models)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.embeddings import BUNDLED_MODEL, MULTILINGUAL_MODEL
from core.samples import CHINESE
from tests.helpers import open_app

pytestmark = pytest.mark.slow

NOTES = b"# Pier notes\n\nThe ferry to Skellig Mor leaves Pier 4 at 08:15 every weekday.\n"
ZH_NAME = "T3净水器用户手册.txt"
ZH = (CHINESE.folder / ZH_NAME).read_bytes()


def caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Embeddings:"))


def documents(at: AppTest) -> list[dict[str, object]]:
    records: list[dict[str, object]] = at.dataframe[-1].value.to_dict("records")
    return records


def upload(at: AppTest, name: str, data: bytes) -> None:
    at.file_uploader[0].set_value([(name, data, "text/plain")])
    at.run()
    at.button(key="documents.add").click()
    at.run()
    assert not at.exception


def test_documents_chosen_first_make_a_knowledge_base_that_fits_them() -> None:
    at = open_app("app_pages/documents.py", timeout=240)
    assert "choose files and one that fits their language is made for them" in at.info[0].value
    at.file_uploader[0].set_value([(ZH_NAME, ZH, "text/plain")])
    at.run()
    assert at.text_input(key="documents.first.name").value == "documents"  # the file's name has no usable letters
    at.button(key="documents.first.create").click()
    at.run()
    assert not at.exception
    assert at.selectbox(key="documents.kb").value == "documents"
    assert f"Embeddings: {MULTILINGUAL_MODEL}" in caption(at) and "jieba" in caption(at)
    assert [(d["Name"], d["Language"]) for d in documents(at)] == [(ZH_NAME, "Chinese")]


def test_a_chinese_file_for_an_english_knowledge_base_is_held_and_gets_a_fitting_one_in_one_click() -> None:
    at = open_app("app_pages/documents.py", timeout=240)
    at.text_input(key="documents.new_name").input("piers")
    next(b for b in at.button if b.label == "Create knowledge base").click()  # the pickers left on "fit the documents"
    at.run()
    assert "fit the first documents" in caption(at)
    upload(at, "pier_notes.md", NOTES)
    assert f"Embeddings: {BUNDLED_MODEL}" in caption(at) and "fit the first" not in caption(at)
    assert [d["Language"] for d in documents(at)] == ["English"]

    upload(at, ZH_NAME, ZH)
    report = at.dataframe[0].value.to_dict("records")
    assert [(r["File"], r["Result"]) for r in report] == [(ZH_NAME, "✋ held: language")]
    [notice] = [w.value for w in at.warning if w.value.startswith("Not added yet")]
    assert ZH_NAME in notice and "Chinese text does not fit `piers`" in notice
    assert [d["Name"] for d in documents(at)] == ["pier_notes.md"]  # nothing stored before the user chose

    at.button(key="documents.held.new").click()
    at.run()
    assert not at.exception
    assert at.selectbox(key="documents.kb").value == "piers-zh"
    assert f"Embeddings: {MULTILINGUAL_MODEL}" in caption(at) and "jieba" in caption(at)
    assert [(d["Name"], d["Language"]) for d in documents(at)] == [(ZH_NAME, "Chinese")]
    assert not [w for w in at.warning if w.value.startswith("Not added yet")]
    at.selectbox(key="documents.kb").set_value("piers").run()
    assert [d["Name"] for d in documents(at)] == ["pier_notes.md"]
