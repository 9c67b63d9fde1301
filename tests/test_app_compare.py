"""The Compare page through AppTest, with the real embedded model and the sample knowledge base."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import Settings
from core.embeddings import EmbeddingModel
from core.ingest import Upload, ingest
from core.store import SearchHit, Store
from core.strategies import RAG_TEMPLATE, RAG_TOP_K, Answer, Strategy
from tests.helpers import open_app, shown

pytestmark = pytest.mark.slow
PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "compare.py")
APP = str(Path(__file__).resolve().parent.parent / "app.py")
QUESTION = "How long is parental leave at full pay?"


@pytest.fixture(autouse=True)
def no_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "off")


def _without_magic(get_option):  # type: ignore[no-untyped-def]
    return lambda name: False if name == "runner.magicEnabled" else get_option(name)


def strategy_columns(at: AppTest) -> list:  # type: ignore[type-arg]
    """The answer columns (each holds a strategy picker), in order."""
    return [c for c in at.columns if any((sb.key or "").endswith(".preset") for sb in c.selectbox)]


def ask(question: str = QUESTION) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=240)
    at.run()
    assert not at.exception
    at.text_input(key="compare.question").input(question)  # a form: the text goes with the click on Ask
    at.button(key="compare.ask").click()
    at.run()
    assert not at.exception
    return at


def test_four_presets_side_by_side_with_ft_disabled(sample_kb: str) -> None:
    at = ask()
    assert [at.selectbox(key=f"compare.col{i}.preset").value for i in range(4)] == ["PE", "RAG", "FT", "FT+RAG"]
    pe, rag, ft, ft_rag = strategy_columns(at)
    assert "No fine-tuned model yet" in ft.info[0].value and "No fine-tuned model yet" in ft_rag.info[0].value
    assert "20 weeks" in " ".join(m.value for m in rag.markdown)
    sources = [shown(e.label) for e in rag.expander if e.label.startswith("#")]
    assert sources and "employee_handbook.pdf · page 5" in sources[0]
    assert not [e for e in pe.expander if e.label.startswith("#")]  # PE retrieves nothing
    supported = [m.value for m in rag.markdown if m.value.startswith("**Supported by:** employee\\_handbook")]
    assert supported or any(c.value.startswith("⚠️ Not supported") for c in rag.caption)
    assert not [m for m in [*pe.markdown, *pe.caption] if "upported" in m.value]  # PE has no sources to check
    assert at.session_state["compare.partial"] == {}  # all finished: nothing kept as stopped
    for col in (pe, rag):
        assert any("first token" in c.value and "tokens" not in c.value.split("·")[0] for c in col.caption)
        assert any(e.label == "Exact prompt" for e in col.expander)


def test_history_offers_past_questions(sample_kb: str) -> None:
    ask()
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    history = at.selectbox(key="compare.history")
    assert QUESTION in history.options
    history.set_value(QUESTION)
    at.run()
    assert at.text_input(key="compare.question").value == QUESTION


def test_wrong_answer_is_saved_to_a_dataset(sample_kb: str, data_dir: Path) -> None:
    at = ask()
    at.text_area(key="compare.col1.corrected").input("20 weeks at full pay.")  # a form: sent with Save
    at.button(key="compare.col1.save_correction").click()
    at.run()
    assert not at.exception
    from core.finetune.datasets import read_dataset

    [row] = read_dataset(data_dir / "datasets", "corrections")
    assert (row["answer"], row["strategy"], row["question"]) == ("20 weeks at full pay.", "RAG", QUESTION)


def test_without_documents_rag_says_what_to_do() -> None:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception
    assert "Create a knowledge base" in strategy_columns(at)[1].info[0].value


def test_two_sessions_asking_at_once_both_finish(sample_kb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Streamlit's "magic" parses the page with ast in each session, and CPython 3.11 cannot build
    # ASTs in two threads at once ("AST constructor recursion depth mismatch"). The app turns magic
    # off in .streamlit/config.toml; say so here too, whatever directory the tests run from.
    from streamlit import config as st_config

    monkeypatch.setattr(st_config, "get_option", _without_magic(st_config.get_option))
    sessions = []
    for n in range(2):
        at = AppTest.from_file(PAGE, default_timeout=600)
        at.run()
        at.text_input(key="compare.question").input(f"Who is the basin manager? ({n})")
        at.button(key="compare.ask").click()
        sessions.append(at)
    errors: list[BaseException] = []

    def finish(at: AppTest) -> None:
        try:
            at.run()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=finish, args=(at,)) for at in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors
    for at in sessions:
        assert not at.exception
        pe, rag = strategy_columns(at)[:2]
        assert any("first token" in c.value for c in pe.caption)
        assert any("first token" in c.value for c in rag.caption)


def test_answers_stay_with_the_question_and_preset_that_made_them(sample_kb: str) -> None:
    at = ask()
    at.session_state["compare.question"] = "Who is the basin manager?"  # as picking a past question does
    at.run()
    notice = next(i.value for i in at.info if "earlier question" in i.value)
    assert QUESTION in notice
    at.selectbox(key="compare.col0.preset").set_value("RAG")
    at.run()
    first = strategy_columns(at)[0]
    assert not any("first token" in c.value for c in first.caption)  # PE's answer is not shown under RAG


def test_locked_qdrant_leaves_pe_working_and_says_why(data_dir: Path) -> None:
    from qdrant_client import QdrantClient

    holder = QdrantClient(path=str(data_dir / "qdrant"))
    try:
        at = ask("Name a colour of the sea.")
        assert "in use by another process" in at.warning[0].value
        pe = strategy_columns(at)[0]
        assert any("first token" in c.value for c in pe.caption)
    finally:
        holder.close()


def test_rag_columns_use_the_knowledge_base_chosen_on_documents(sample_kb: str, minilm: EmbeddingModel) -> None:
    with Store.open(Settings.from_env(), minilm) as store:
        store.create_kb("farm", chunk_size=800, chunk_overlap=120)
        ingest(store, "farm", [Upload("barn.txt", b"The north barn holds 40 dairy cows.")])
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/documents.py")
    at.run()
    at.selectbox(key="documents.kb").set_value("farm")
    at.run()
    at.switch_page("app_pages/compare.py")
    at.run()
    assert not at.exception
    rag = strategy_columns(at)[1]
    assert "📚 farm · top-2" in [c.value for c in rag.caption]
    assert at.selectbox(key="compare.kb").value == "farm"
    at.text_input(key="compare.question").input("How many cows are in the north barn?")
    at.button(key="compare.ask").click()
    at.run()
    sources = [shown(e.label) for e in strategy_columns(at)[1].expander if e.label.startswith("#")]
    assert sources and all("barn.txt" in label for label in sources)  # retrieved from farm, not the sample
    refreshed = AppTest.from_file(APP, default_timeout=120)  # a browser refresh: a new session
    refreshed.run()
    refreshed.switch_page("app_pages/compare.py")
    refreshed.run()
    assert refreshed.text_input(key="compare.question").value == "How many cows are in the north barn?"
    assert "📚 farm · top-2" in [c.value for c in strategy_columns(refreshed)[1].caption]


def test_after_a_refresh_every_column_and_the_sidebar_name_the_same_knowledge_base(
    sample_kb: str, minilm: EmbeddingModel
) -> None:
    """A column went back to a knowledge base chosen earlier while the sidebar named another (issue 24)."""
    with Store.open(Settings.from_env(), minilm) as store:
        store.create_kb("farm", chunk_size=800, chunk_overlap=120)
        ingest(store, "farm", [Upload("barn.txt", b"The north barn holds 40 dairy cows.")])
    at = open_app("app_pages/documents.py")
    at.selectbox(key="documents.kb").set_value("farm").run()
    at.switch_page("app_pages/compare.py").run()
    at.selectbox(key="compare.col0.preset").set_value("RAG").run()  # two RAG columns, both on farm
    at.switch_page("app_pages/documents.py").run()
    at.selectbox(key="documents.kb").set_value(sample_kb).run()  # chosen elsewhere: Compare follows
    at.switch_page("app_pages/compare.py").run()
    at.run()  # any click: what this run changed is saved for the next session
    assert not at.exception

    def named(at: AppTest) -> tuple[list[str], str, str]:
        rags = [c for c in strategy_columns(at) if any(sb.value == "RAG" for sb in c.selectbox)]
        shown_kbs = [c.value for col in rags for c in col.caption if c.value.startswith("📚")]
        sidebar = next(c.value for c in at.sidebar.caption if c.value.startswith("📚"))
        return shown_kbs, at.selectbox(key="compare.kb").value, sidebar

    assert named(at) == ([f"📚 {sample_kb} · top-2"] * 2, sample_kb, named(at)[2])
    refreshed = open_app("app_pages/compare.py")  # a browser refresh: a new session on the same DATA_DIR
    columns, picked, sidebar = named(refreshed)
    assert columns == [f"📚 {sample_kb} · top-2"] * 2 and picked == sample_kb
    assert sidebar.startswith(f"📚 `{sample_kb}`")
    refreshed.selectbox(key="compare.kb").set_value("farm").run()  # chosen here: columns and sidebar follow
    columns, _, sidebar = named(refreshed)
    assert columns == ["📚 farm · top-2"] * 2 and sidebar.startswith("📚 `farm`")
    again = open_app("app_pages/documents.py")
    assert again.selectbox(key="documents.kb").value == "farm"


def test_typing_then_clicking_ask_asks_and_an_empty_question_is_explained(sample_kb: str) -> None:
    at = AppTest.from_file(PAGE, default_timeout=240)
    at.run()
    at.button(key="compare.ask").click()
    at.run()
    assert "Type a question first." in [w.value for w in at.warning]
    at.text_input(key="compare.question").input(QUESTION)
    at.button(key="compare.ask").click()  # the text and the click arrive in one run, as a form sends them
    at.run()
    assert not at.exception
    assert any("first token" in c.value for c in strategy_columns(at)[0].caption)


def test_a_chinese_knowledge_base_starts_on_gemma_and_the_english_embedded_model_gets_a_notice(
    data_dir: Path, minilm: EmbeddingModel
) -> None:
    with Store.open(Settings.from_env(), minilm) as store:
        store.create_kb("qingwu", chunk_size=300, chunk_overlap=0, analyser="chinese")
        ingest(store, "qingwu", [Upload("手册.md", "反渗透膜滤芯每三十六个月更换一次。".encode())])
    at = AppTest.from_file(PAGE, default_timeout=240)
    at.run()
    assert not at.exception
    rag_model = at.selectbox(key="compare.col1.RAG.model")
    assert rag_model.value == "llama.cpp:gemma-3-270m"  # the embedded base that reads Chinese best
    assert not [w for w in at.warning if "is Chinese" in w.value]
    rag_model.set_value("llama.cpp:SmolLM2-135M-Instruct").run()
    [notice] = [w.value for w in at.warning if "is Chinese" in w.value]
    assert "`qingwu` is Chinese, but RAG answers with the embedded SmolLM2" in notice
    assert "ollama pull qwen2.5:1.5b" in notice and "the embedded gemma-3-270m reads Chinese better" in notice
    at.selectbox(key="compare.col1.preset").set_value("PE").run()  # no column reads it now
    assert not [w for w in at.warning if "is Chinese" in w.value]


LEAVE = (
    "Sick leave and parental leave\n"
    "If you are ill, tell your manager before 10:00 on the first day of absence.\n"
    "Brackenridge offers 20 weeks of parental leave at full pay to every parent, whatever their gender and\n"
    "however their child arrives in the family. Parental leave may be taken in up to three blocks."
)
EXPENSES = "Meals while travelling are reimbursed up to a daily cap of 45 euros in total; alcohol is never reimbursed."


@pytest.fixture
def small_kb(data_dir: Path, minilm: EmbeddingModel) -> None:
    with Store.open(Settings.from_env(), minilm) as store:
        store.create_kb("brackenridge", chunk_size=800, chunk_overlap=120)
        ingest(store, "brackenridge", [Upload("handbook.md", LEAVE.encode())])


def shown_answer(text: str) -> AppTest:
    """The page showing a RAG answer (made here, not by the model, so that what it says is known)."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    rag = presets_strategy(at)
    sources = [
        SearchHit(EXPENSES, 0.41, "d2", "expenses.txt", 2, 0, None),
        SearchHit(LEAVE, 0.83, "d1", "employee_handbook.pdf", 5, 3, "Sick leave"),
    ]
    at.session_state["compare.question"] = QUESTION
    at.session_state["compare.answers"] = {1: Answer(QUESTION, rag, text=text, sources=sources)}
    at.run()
    assert not at.exception
    return at


def presets_strategy(at: AppTest) -> Strategy:
    """The RAG preset as the page built it (the column shows an answer only if its strategy matches)."""
    return Strategy("RAG", at.selectbox(key="compare.col1.RAG.model").value, RAG_TEMPLATE, retrieval=True,
                    kb="brackenridge", top_k=RAG_TOP_K)  # fmt: skip


def test_a_rag_answer_names_and_marks_the_sentence_that_supports_it(small_kb: None) -> None:
    at = shown_answer("Parental leave is 20 weeks at full pay.")
    rag = strategy_columns(at)[1]
    texts = [m.value for m in rag.markdown]
    assert (
        "**Supported by:** employee\\_handbook\\.pdf, p. 5 — «Brackenridge offers 20 weeks of parental leave at "
        "full pay to every parent, whatever their gender and however their child arrives in the family\\.»"
    ) in texts
    cards = [e for e in rag.expander if e.label.startswith("#")]
    assert [shown(c.label).split(" · ")[1] for c in cards] == ["expenses.txt", "employee_handbook.pdf"]
    assert [c.proto.expanded for c in cards] == [False, True]  # the supporting source is open
    assert [t.value for t in cards[0].text] == [EXPENSES]  # verbatim, as before
    [marked] = cards[1].markdown
    assert ":orange-background[Brackenridge offers 20 weeks of parental leave at full pay" in marked.value
    assert marked.value.startswith("Sick leave and parental leave  \nIf you are ill")
    # The citation anchors ride on the Sources heading: no element holds an anchor alone.
    assert not [t for t in texts if t.strip().startswith("<span") and t.strip().endswith("</span>")]
    heading = next(t for t in texts if "**Sources**" in t)
    assert '<span id="src-1-1"></span><span id="src-1-2"></span>**Sources** (2)' in heading


def test_an_answer_no_retrieved_sentence_supports_is_said_to_be_unsupported(small_kb: None) -> None:
    at = shown_answer("The answer is: 2.")
    rag = strategy_columns(at)[1]
    assert any(c.value.startswith("⚠️ Not supported: no sentence of the retrieved sources") for c in rag.caption)
    assert not [m for m in rag.markdown if "Supported by" in m.value]
    assert all(not c.markdown for c in rag.expander if c.label.startswith("#"))  # nothing marked


def test_a_stopped_run_keeps_what_each_column_wrote_and_says_it_stopped(small_kb: None) -> None:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    rag = presets_strategy(at)
    at.session_state["compare.question"] = QUESTION
    # As Stop leaves them: column 0 had finished, column 1 was midway (the page keeps both in the session).
    at.session_state["compare.answers"] = {0: Answer(QUESTION, replace(rag, name="PE"), text="Twenty weeks.")}
    stopped = Answer(QUESTION, rag, text="Parental leave is", error="Stopped before the answer was complete.")
    at.session_state["compare.partial"] = {1: stopped}
    for _ in range(2):  # shown, and still shown on the next rerun
        at.run()
        assert not at.exception and at.session_state["compare.partial"] == {}
        pe, rag_column = strategy_columns(at)[:2]
        assert "Parental leave is" in [m.value for m in rag_column.markdown]
        assert [e.value for e in rag_column.error] == ["Stopped before the answer was complete."]
        assert "Twenty weeks." in [m.value for m in pe.markdown] and not pe.error
        assert any(c.value.startswith("⏱️ stopped after") for c in rag_column.caption)
