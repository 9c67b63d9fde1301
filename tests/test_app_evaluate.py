"""The Evaluate page through AppTest: the real embedded model, MiniLM and the sample knowledge base."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.finetune.datasets import load_pairs
from tests.helpers import open_app

pytestmark = pytest.mark.slow


def frame_with(at: AppTest, column: str):  # type: ignore[no-untyped-def]
    """The first dataframe on the page with this column (the question preview comes first)."""
    return next(d.value for d in at.dataframe if column in d.value.columns and "tag" not in d.value.columns)


def open_page() -> AppTest:
    return open_app("app_pages/evaluate.py")


def test_without_runs_the_page_offers_the_sample_set() -> None:
    at = open_page()
    assert at.title[0].value == "📊 Evaluate"
    assert any("**sample**: 40 questions" in c.value for c in at.caption)
    at.selectbox(key="evaluate.sample").set_value("qingwu").run()
    assert any("**sample-qingwu**: 30 questions" in c.value for c in at.caption)
    assert any("No evaluation yet" in i.value for i in at.info)
    at.radio(key="evaluate.source").set_value("Control set").run()
    assert any("**control**: 40 questions" in c.value for c in at.caption)


def test_a_small_run_fills_the_matrix_charts_and_recommendation(sample_kb: str, data_dir: Path) -> None:
    at = open_page()
    at.number_input(key="evaluate.limit").set_value(2).run()
    assert at.button(key="evaluate.start").label == "▶️ Evaluate (4 answers)"
    at.button(key="evaluate.start").click().run()
    assert not at.exception, at.exception
    deadline = time.time() + 240
    while time.time() < deadline and not any("· done" in str(o) for o in at.selectbox(key="evaluate.run_id").options):
        time.sleep(1)
        at.run()
    assert not at.exception, at.exception
    picker = at.selectbox(key="evaluate.run_id")
    assert picker.options[0].endswith("· done")
    # The browser kept the text first sent for the chosen run ("· running") unless the value is sent anew.
    assert picker.proto.set_value and picker.proto.raw_value == picker.options[0]
    summary, matrix = frame_with(at, "hit@k"), frame_with(at, "expected")
    assert list(summary["strategy"]) == ["PE", "RAG"] and list(summary["answers"]) == [2, 2]
    assert summary.loc[1, "hit@k"] >= 0.5 and summary["hit@k"].isna()[0]  # PE retrieves nothing: no hit rate
    assert list(matrix.columns) == ["id", "PE", "RAG", "question", "expected"]
    assert all(str(v)[0] in "✅❌" for v in matrix["RAG"])
    assert not any(" · not " in str(v) for v in matrix["PE"])  # PE retrieves nothing: no place it was lost
    wrong_rag = [str(v) for v in matrix["RAG"] if str(v).startswith("❌")]
    assert all(v.endswith(("· not retrieved", "· not in excerpt", "· not read")) for v in wrong_rag), wrong_rag
    assert any(c.value.startswith("📖 RAG: the answer was in the retrieved chunks for ") for c in at.caption)
    specs = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert len(specs) == 4  # metrics by strategy, correct vs p50, answer times, hit@k (no forgetting run yet)
    assert '"mark": {"type": "boxplot"' in specs[2] or '"boxplot"' in specs[2]
    assert any("ranks first" in m.value or m.value.startswith("**Not settled.**") for m in at.markdown)
    assert any(c.value.startswith("This rests on 2 questions: PE ") for c in at.caption)
    assert any("No fine-tuned model was evaluated" in i.value for i in at.info)

    wrong = [q for q in matrix["id"] if not str(matrix.set_index("id").loc[q, "PE"]).startswith("✅")]
    at.selectbox(key="evaluate.fail_strategy").set_value("PE").run()
    at.button(key="evaluate.send_failures").click().run()
    assert not at.exception
    assert [p.question for p in load_pairs(data_dir / "datasets", "failures-pe").pairs] == [
        q for q in frame_with(at, "expected")["question"] if q in set(matrix.set_index("id").loc[wrong, "question"])
    ]
    assert any("failures-pe" in s.value for s in at.success)

    at.toggle(key="evaluate.failures_only").set_value(True).run()
    assert not at.exception
    shown = frame_with(at, "expected") if any("expected" in d.value.columns for d in at.dataframe) else None
    assert shown is None or all(any(str(v).startswith("❌") for v in row[["PE", "RAG"]]) for _, row in shown.iterrows())

    from core.evaluation import report
    from ui import resources

    run = report.load_run(resources.records(), at.session_state["evaluate.run_id"])
    at.session_state["evaluate.imported"] = report.to_json(run)
    at.run()
    assert any("Showing the imported run" in i.value for i in at.info)
    assert list(frame_with(at, "hit@k")["strategy"]) == ["PE", "RAG"]
    assert list(frame_with(at, "expected")["id"]) == list(matrix["id"])


def test_every_training_mode_can_join_as_its_own_ft_rag_column(sample_kb: str, data_dir: Path) -> None:
    from tests.test_adapters import publish

    joint = {"name": "joint", "kb": "brackenridge", "template": "RAG with citations", "template_version": 3,
             "top_k": 2, "without_golden": 0.2, "examples": 40, "golden_retrieved": 39,
             "golden_unfound": 0}  # fmt: skip
    from core.models import bundled_gguf

    base = {"name": "SmolLM2-135M-Instruct", "file": bundled_gguf().name, "sha256": "ab" * 32}
    publish(data_dir, "facts-1", base=base)
    publish(data_dir, "reader-1", base=base, mode=joint)
    at = open_page()
    at.number_input(key="evaluate.limit").set_value(2).run()
    assert at.button(key="evaluate.start").label == "▶️ Evaluate (8 answers)"  # PE, RAG, FT and FT+RAG
    toggle = at.toggle(key="evaluate.modes")
    assert "(FT then RAG, Joint)" in toggle.label
    toggle.set_value(True).run()
    assert not at.exception, at.exception
    assert at.button(key="evaluate.start").label == "▶️ Evaluate (12 answers)"  # two columns more


def test_a_chinese_question_set_on_the_embedded_model_gets_the_notice() -> None:
    at = open_page()
    assert not any("Chinese" in w.value for w in at.warning)
    at.selectbox(key="evaluate.sample").set_value("qingwu").run()
    assert any("This question is Chinese" in w.value and "qwen2.5" in w.value.lower() for w in at.warning)
    assert any("the embedded gemma-3-270m reads Chinese better" in w.value for w in at.warning)


def test_the_control_set_runs_beside_the_users_run_and_never_feeds_the_recommendation(
    sample_kb: str, data_dir: Path
) -> None:
    """The control button raised StreamlitWidgetAlreadyInstantiatedError and switched Results to the control run."""
    from core.evaluation import questions as qs
    from core.lab.evaluation import latest_evaluation, running_ids
    from core.models import bundled_gguf
    from tests.test_adapters import publish
    from ui import resources

    publish(
        data_dir, "facts-1", base={"name": "SmolLM2-135M-Instruct", "file": bundled_gguf().name, "sha256": "ab" * 32}
    )
    question = qs.EvalQuestion("m1", "How long is the warranty on a TideCare pump?", "Two years.")  # no source
    qs.save_set(data_dir, "mine", [question])
    at = open_page()
    at.radio(key="evaluate.source").set_value("Saved set").run()
    at.selectbox(key="evaluate.ncols").set_value(2).run()  # PE and RAG
    at.button(key="evaluate.start").click().run()
    deadline = time.time() + 180
    while time.time() < deadline and not any("· done" in str(o) for o in at.selectbox(key="evaluate.run_id").options):
        time.sleep(1)
        at.run()
    assert not at.exception, at.exception
    mine = at.session_state["evaluate.run_id"]
    assert "hit@k" not in frame_with(at, "strategy").columns  # nothing to score retrieval against: not "None"
    assert any("Retrieval not scored: this question set names no source document" in c.value for c in at.caption)
    at.selectbox(key="evaluate.cell_s").set_value("RAG").run()
    opened = next(m.value for m in at.markdown if "Contains the expected answer" in m.value)
    assert "Retrieval not scored: the question names no source document" in opened and "retrieval_scored" not in opened
    assert any(c.value.startswith("This rests on 1 question:") for c in at.caption)

    at.button(key="evaluate.control").click().run()
    assert not at.exception, at.exception
    runs = resources.records().runs()
    control_run = next(r for r in runs if r.question_set == qs.CONTROL_SET)
    assert at.session_state["evaluate.run_id"] == mine  # Results stay on the user's run
    assert control_run.id in running_ids(resources.jobs())
    job = latest_evaluation(resources.jobs())
    assert job is not None
    job.cancel()
    while job.view().running:
        time.sleep(0.2)

    at = open_page()  # a refresh: the newest run is the control run, Results still open the user's
    assert at.session_state["evaluate.run_id"] == mine
    at.selectbox(key="evaluate.run_id").set_value(control_run.id).run()
    assert not at.exception, at.exception
    assert any("control run" in i.value for i in at.info)
    assert not any("ranks first" in m.value or "Not settled" in m.value for m in at.markdown)


def test_the_question_set_chosen_survives_a_refresh(data_dir: Path) -> None:
    """After a refresh the page went back to the sample set (and the sweep offered its questions)."""
    from core.evaluation import questions as qs

    for name in ("alpha", "mine"):
        qs.save_set(data_dir, name, [qs.EvalQuestion("m1", f"What is {name}?", "A set.")])
    at = open_page()
    at.radio(key="evaluate.source").set_value("Saved set").run()
    at.selectbox(key="evaluate.saved").set_value("mine").run()
    assert any("**mine**: 1 questions" in c.value for c in at.caption)
    at = open_page()  # a refresh: a new session on the same DATA_DIR
    assert not at.exception, at.exception
    assert at.radio(key="evaluate.source").value == "Saved set"
    assert at.selectbox(key="evaluate.saved").value == "mine"
    assert any("**mine**: 1 questions" in c.value for c in at.caption)


def test_a_strategy_columns_settings_and_search_mode_survive_a_page_switch_and_a_refresh(sample_kb: str) -> None:
    """Evaluate's columns forgot what they were set to on every page switch, and offered no search mode: they are
    Compare's editor now (ui.strategy_editor), remembered the same way, and the matrix column says what changed."""
    at = open_page()
    at.selectbox(key="evaluate.col0.preset").set_value("RAG").run()  # two RAG columns: one set, one the preset
    modes = at.selectbox(key="evaluate.col0.RAG.retrieval_mode")
    assert modes.options == ["the knowledge base's own", "hybrid", "dense", "sparse"]
    modes.set_value("sparse").run()
    at.slider(key="evaluate.col0.RAG.top_k").set_value(4).run()
    at.slider(key="evaluate.col0.RAG.max_tokens").set_value(64).run()
    assert not at.exception, at.exception
    names = [c.value for c in at.caption if c.value.startswith("Column name:")]
    assert names[:2] == ["Column name: **RAG k=4 sparse**", "Column name: **RAG**"]
    at.switch_page("app_pages/compare.py").run()
    at.switch_page("app_pages/evaluate.py").run()
    for session in (at, open_page()):  # back from another page, then a refresh (a new session)
        assert not session.exception, session.exception
        assert session.selectbox(key="evaluate.col0.preset").value == "RAG"
        assert session.selectbox(key="evaluate.col0.RAG.retrieval_mode").value == "sparse"
        assert session.slider(key="evaluate.col0.RAG.top_k").value == 4
        assert session.slider(key="evaluate.col0.RAG.max_tokens").value == 64
        assert session.slider(key="evaluate.col1.RAG.top_k").value != 4  # the other column kept its own
        assert "Column name: **RAG k=4 sparse**" in [c.value for c in session.caption]
