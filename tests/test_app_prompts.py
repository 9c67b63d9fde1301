"""The Prompts page through AppTest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow
PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "prompts.py")
RAG = "RAG with citations"


def open_page(name: str = RAG) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    at.selectbox(key="prompts.name").set_value(name)
    at.run()
    assert not at.exception
    return at


def test_builtins_are_listed_and_previewed_with_a_token_count() -> None:
    at = open_page()
    assert set(at.selectbox(key="prompts.name").options) >= {RAG, "Few-shot assistant", "Plain question"}
    assert at.success[0].value == "Valid template."
    shown = " ".join(t.value for t in at.text)
    assert "Text:\nBrackenridge offers 20 weeks of parental leave at full pay to every parent." in shown
    prompt = next(e for e in at.expander if e.label.startswith("Exact prompt for"))
    assert prompt.label.endswith("tokens") and int(prompt.label.split(": ")[1].split()[0]) > 50


def test_the_completion_form_of_a_base_model_is_previewed(data_dir: Path, gemma_dir: Path) -> None:
    from core.gemma import gemma_path

    at = open_page()
    form = next(e for e in at.expander if e.label.startswith("Completion form for gemma-3-270m"))
    assert not form.label.endswith("tokens") and not gemma_path(data_dir).exists()  # a preview assembles nothing
    text = form.code[0].value
    assert text.startswith("Text: Brackenridge offers 20 weeks of parental leave at full pay to every parent.")
    assert text.endswith("\nQuestion: How long is parental leave at full pay?\nAnswer:")
    assert "Copy the sentence" not in text  # a base model follows no instructions: the template's words are left out
    gemma_path(data_dir).parent.mkdir(parents=True)
    gemma_path(data_dir).symlink_to(gemma_path(gemma_dir))
    at.run()
    form = next(e for e in at.expander if e.label.startswith("Completion form for gemma-3-270m"))
    assert form.label.endswith("tokens") and int(form.label.split(": ")[1].split()[0]) > 20


def test_invalid_edit_is_explained_and_cannot_be_saved() -> None:
    at = open_page()
    at.text_area(key=f"prompts.edit.{RAG}.v1.user").input("Tell me {question.__class__}")
    at.run()
    assert "no attribute or index access" in at.error[0].value
    assert "`{question.__class__}`" in at.error[0].value  # code as code: Markdown cannot eat the underscores
    assert "must contain {question}" not in at.error[0].value  # it does contain it
    assert at.button(key="prompts.save").disabled


def test_saving_makes_a_new_version_and_the_diff_shows_the_change() -> None:
    at = open_page()
    at.text_area(key=f"prompts.edit.{RAG}.v1.system").input("Answer only from the sources. Be brief.")
    at.run()
    at.button(key="prompts.save").click()
    at.run()
    assert not at.exception
    assert at.selectbox(key=f"prompts.version.{RAG}").options == ["2", "1"]
    assert at.selectbox(key=f"prompts.version.{RAG}").value == 2  # the picker shows what was just saved
    diff = at.code[-1].value
    assert "+Answer only from the sources. Be brief." in diff and diff.count("\n-") >= 1


def test_the_separator_between_sources_is_chosen_previewed_and_saved() -> None:
    at = open_page()
    picker = at.selectbox(key=f"prompts.edit.{RAG}.v1.source_separator")
    assert picker.value == "a space (one running text)"  # the built-in RAG reads excerpts as one text
    picker.set_value("a blank line")
    at.run()
    shown = " ".join(t.value for t in at.text)
    assert "every parent.\n\nParental leave may be taken" in shown
    at.button(key="prompts.save").click()
    at.run()
    assert not at.exception
    assert "# between sources\n-' '\n+'\\n\\n'" in at.code[-1].value


def test_import_a_template_file(data_dir: Path) -> None:
    """(Export's content is core's to_json, round-tripped in test_prompts.)"""
    at = open_page("Plain question")
    template = {"name": "Imported", "system": "Be kind.", "user": "Q: {question}", "examples": []}
    at.file_uploader(key="prompts.import").set_value(
        ("imported.json", json.dumps(template).encode(), "application/json")
    )
    at.run()
    at.button(key="prompts.import_save").click()
    at.run()
    assert not at.exception
    assert at.selectbox(key="prompts.name").value == "Imported"
    assert (data_dir / "templates" / "imported" / "v1.json").is_file()
