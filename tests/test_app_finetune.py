"""The Fine-tune page through AppTest."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import adapters
from core.config import Settings
from core.finetune.datasets import list_datasets, load_pairs
from core.models import embedded_models
from core.strategies import presets

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "finetune.py")


def open_page(source: str | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception
    if source:
        at.radio(key="finetune.source").set_value(source)
        at.run()
    return at


def captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def test_sample_facts_load_into_the_editor_with_a_version() -> None:
    at = open_page()
    assert "Load the sample facts" in at.info[-1].value
    at.button(key="finetune.load_sample").click()
    at.run()
    assert not at.exception
    assert "40 pairs · version `" in captions(at)
    assert at.text_input(key="finetune.name").value == "sample-facts"
    assert at.text_input(key="finetune.model").value == "sample-facts-1"


def test_upload_with_bad_rows_names_them_and_keeps_the_good_ones() -> None:
    at = open_page("Upload JSONL/CSV")
    rows = [
        {"question": "Who founded Brackenridge?", "answer": "Ilse Marrow and Tomasz Quill."},
        {"question": "How many staff?"},
        {"question": "How many staff?", "answer": "214."},
    ]
    data = "\n".join(json.dumps(r) for r in rows).encode()
    at.file_uploader(key="finetune.upload0").set_value(("facts.jsonl", data, "application/jsonl"))
    at.run()
    assert not at.exception
    assert "1 problem(s) in 3 rows" in at.warning[0].value
    table = at.dataframe[0].value
    assert table.to_dict("records") == [{"row": 2, "field": "answer", "message": "is missing"}]
    at.button(key="finetune.use_upload").click()
    at.run()
    assert "2 pairs · version" in captions(at)
    assert at.text_input(key="finetune.name").value == "facts"


def test_unusable_upload_says_what_to_do() -> None:
    at = open_page("Upload JSONL/CSV")
    at.file_uploader(key="finetune.upload0").set_value(("facts.csv", b"prompt,completion\nq,a\n", "text/csv"))
    at.run()
    assert not at.exception
    assert "first row must name the columns 'question' and 'answer'" in at.error[0].value


def test_rows_longer_than_the_maximum_length_block_training() -> None:
    at = open_page("Upload JSONL/CSV")
    rows = [{"question": "Short?", "answer": "Yes."}, {"question": "Long?", "answer": "word " * 300}]
    data = "\n".join(json.dumps(r) for r in rows).encode()
    at.file_uploader(key="finetune.upload0").set_value(("long.jsonl", data, "application/jsonl"))
    at.run()
    at.button(key="finetune.use_upload").click()
    at.run()
    assert not at.exception
    assert "Shorten these rows" in at.warning[0].value
    table = next(d.value for d in at.dataframe if "row" in d.value.columns)
    issue = table.to_dict("records")[0]
    assert issue["row"] == 2 and "over the maximum length 256" in issue["message"]
    assert at.button(key="finetune.train").disabled
    at.number_input(key="finetune.settings.max_length").set_value(512)
    at.run()
    assert not at.warning and not at.button(key="finetune.train").disabled


@pytest.mark.slow
def test_train_from_the_page_then_the_model_is_listed_and_ft_presets_use_it(data_dir: Path) -> None:
    at = open_page()
    at.button(key="finetune.load_sample").click()
    at.run()
    at.number_input(key="finetune.settings.max_steps").set_value(3)
    at.number_input(key="finetune.settings.replay").set_value(2)
    at.text_input(key="finetune.model").set_value("page-run")
    at.run()
    assert "also trains on 2 general questions answered by SmolLM2" in captions(at)
    at.button(key="finetune.train").click()
    at.run()
    assert not at.exception
    deadline = time.time() + 240
    while not at.success and time.time() < deadline:
        time.sleep(2)
        at.run()
        assert not at.exception and not at.error
    assert "page-run is trained and registered" in at.success[0].value
    # The dataset was saved with the training, and the model card shows its manifest.
    assert list_datasets(data_dir / "datasets") == ["sample-facts"]
    assert len(load_pairs(data_dir / "datasets", "sample-facts").pairs) == 40
    assert any(e.label.startswith("🎯 SmolLM2-135M-Instruct+page-run") for e in at.expander)
    assert "leading tokens agree" in captions(at)
    assert "Replayed 2 general examples answered by the base" in captions(at)
    assert adapters.get_adapter(data_dir, "page-run").manifest.as_json()["settings"]["replay"] == 2
    models = embedded_models(Settings.from_env())
    assert presets(models, "kb")["FT"].strategy.model == "llama.cpp:SmolLM2-135M-Instruct+page-run"

    at.button(key="finetune.model.page-run.delete").click()
    at.run()
    assert adapters.list_adapters(data_dir) == []
    assert not any(m.fine_tuned for m in embedded_models(Settings.from_env()))


def test_every_mode_replays_general_examples_by_default_and_says_so() -> None:
    from core.finetune.train_settings import TrainSettings

    at = open_page()
    at.button(key="finetune.load_sample").click()
    at.run()
    default = TrainSettings().replay
    assert default > 0 and f"also trains on {default} general questions" in captions(at)
    at.number_input(key="finetune.settings.replay").set_value(0)
    at.run()
    assert not at.exception and "No general examples" in captions(at)


def test_training_over_a_saved_dataset_with_other_pairs_asks_first(data_dir: Path) -> None:
    from core.finetune.datasets import Pair, save_pairs

    save_pairs(data_dir / "datasets", "sample-facts", [Pair("Who keeps the lighthouse?", "Mara Quell.")])
    at = open_page()
    at.button(key="finetune.load_sample").click()
    at.run()
    at.button(key="finetune.train").click()
    at.run()
    assert not at.exception and not at.error
    assert "A saved dataset named sample-facts holds other pairs" in at.warning[0].value
    assert len(load_pairs(data_dir / "datasets", "sample-facts").pairs) == 1  # nothing replaced yet
    assert resources_jobs_latest(data_dir) is None  # and nothing started


def resources_jobs_latest(data_dir: Path):  # type: ignore[no-untyped-def]
    from core.lab.training import latest_training
    from ui import resources

    return latest_training(resources.jobs(), data_dir)


def test_each_mode_says_what_it_does_and_retrieving_modes_need_a_knowledge_base() -> None:
    at = open_page()
    at.button(key="finetune.load_sample").click()
    at.run()
    picker = at.radio(key="finetune.mode")
    assert picker.options == ["FT then RAG", "Joint", "Staged", "Iterative"]
    assert picker.value == "ft_then_rag" and not at.button(key="finetune.train").disabled
    for mode in ("joint", "staged", "iterative"):
        picker.set_value(mode)
        at.run()
        assert not at.exception
        assert "add documents on the Documents page first" in at.info[-1].value
        assert at.button(key="finetune.train").disabled


def test_with_a_knowledge_base_the_page_starts_on_joint_and_says_why(sample_kb: str) -> None:
    """FT+RAG is what a model trained next to a knowledge base is for: Joint served it best (bench/modes.py)."""
    at = open_page()
    at.button(key="finetune.load_sample").click()
    at.run()
    picker = at.radio(key="finetune.mode")
    assert picker.value == "joint" and "Joint is chosen first" in (picker.help or "")
    assert not at.exception and not at.button(key="finetune.train").disabled  # it retrieves from the sample KB
    assert at.selectbox(key="finetune.joint.kb").value == sample_kb
    picker.set_value("ft_then_rag")
    at.run()
    assert at.radio(key="finetune.mode").value == "ft_then_rag"  # the user's choice is kept


def test_the_model_card_says_which_mode_made_its_data(data_dir: Path) -> None:
    from tests.test_adapters import publish

    mode = {"name": "joint", "kb": "brackenridge", "template": "RAG with citations", "template_version": 2,
            "top_k": 2, "without_golden": 0.2, "examples": 40, "golden_retrieved": 39, "golden_unfound": 0}  # fmt: skip
    publish(data_dir, "joint-1", mode=mode)
    publish(data_dir, "plain-1")
    at = open_page()
    text = captions(at)
    assert "Mode: **Joint** · knowledge base brackenridge · RAG with citations v2 · top-2" in text
    assert "20% of examples without the answer's chunk · answer chunk retrieved for 39/40" in text
    assert "Mode: FT then RAG (plain questions)" in text


def test_an_iterative_run_shows_its_rounds_and_why_it_stopped(data_dir: Path) -> None:
    from dataclasses import replace

    from core.finetune.modes import JointSettings
    from core.lab.rounds import LoopJob, LoopRequest, Round
    from core.models import bundled_gguf

    request = LoopRequest("loop", (), "sample", JointSettings("kb"), bundled_gguf(), "SmolLM2", max_rounds=3)
    job = LoopJob(data_dir, None, request)  # type: ignore[arg-type]  # never started: its view is set below
    rounds = [Round(0, "RAG", "base", 1, 0.5, 20), Round(1, "FT+RAG r1", "m1", 2, 0.8, 8, "loop-r1", 20),
              Round(2, "FT+RAG r2", "m2", 3, 0.75, 10, "loop-r2", 28)]  # fmt: skip
    assert job._view is not None
    job._view = replace(job._view, phase="done", message="Done: round 2 gained nothing (75% vs 80%).",
                        rounds=rounds, finished=job._view.started + 60)  # fmt: skip
    from core.lab.board import _Entry
    from ui import resources

    entry = _Entry("rounds", "loop", data_dir, job)
    resources.jobs()._entries.append(entry)  # the process's board, as the page finds it
    try:
        at = open_page()
        assert "Done: round 2 gained nothing (75% vs 80%)." in at.success[0].value
        table = at.dataframe[0].value
        assert list(table["correct"]) == ["50%", "80%", "75%"] and list(table["model"]) == [
            "base",
            "loop-r1",
            "loop-r2",
        ]
    finally:
        resources.jobs()._entries.remove(entry)


def test_chinese_pairs_start_on_gemma_and_english_ones_on_smollm2() -> None:
    at = open_page("Upload JSONL/CSV")
    rows = [{"question": "莫拉文灯塔是什么颜色？", "answer": "莫拉文灯塔是青色的。"}]
    data = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()
    at.file_uploader(key="finetune.upload0").set_value(("zh.jsonl", data, "application/jsonl"))
    at.run()
    at.button(key="finetune.use_upload").click()
    at.run()
    assert not at.exception
    base = at.selectbox(key="finetune.base")
    bases = embedded_models(Settings.from_env())
    assert bases[base.value].id == "llama.cpp:gemma-3-270m" and "reads Chinese" in bases[base.value].label
    assert "completion form" in (base.help or "")
    assert not at.button(key="finetune.train").disabled  # Gemma counted the rows' tokens in its own form
    assert at.number_input(key="finetune.settings.completion.lr").value == 5e-4  # it forgets less at a lower rate

    at = open_page()
    at.button(key="finetune.load_sample").click()
    at.run()
    assert embedded_models(Settings.from_env())[at.selectbox(key="finetune.base").value].id.endswith(
        "SmolLM2-135M-Instruct"
    )
    assert at.number_input(key="finetune.settings.lr").value == 2e-3
