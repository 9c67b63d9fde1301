"""The Documents page through Streamlit's AppTest, driven by widget keys as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from qdrant_client import QdrantClient
from streamlit.testing.v1 import AppTest

from tests.helpers import HTML_PAGE, PNG_BYTES, open_app, real, serve_ollama_embeddings, shown

pytestmark = pytest.mark.slow

NOTES = b"# Pier notes\n\nThe ferry to Skellig Mor leaves Pier 4 at 08:15 every weekday.\n"


def start() -> AppTest:
    return open_app("app_pages/documents.py", timeout=180)


def create_kb(at: AppTest, name: str) -> None:
    at.text_input(key="documents.new_name").input(name)
    next(b for b in at.button if b.label == "Create knowledge base").click()
    at.run()
    assert not at.exception


def upload(at: AppTest, *files: tuple[str, bytes, str]) -> None:
    at.file_uploader[0].set_value(list(files))
    at.run()
    at.button(key="documents.add").click()
    at.run()
    assert not at.exception


def table(at: AppTest, index: int) -> list[dict[str, object]]:
    records: list[dict[str, object]] = at.dataframe[index].value.to_dict("records")
    return records


def test_first_visit_explains_what_to_do() -> None:
    at = start()
    assert "No knowledge base yet" in at.info[0].value


def test_the_chosen_knowledge_base_survives_other_pages_and_a_refresh() -> None:
    at = start()
    create_kb(at, "piers")
    create_kb(at, "farm")
    at.selectbox(key="documents.kb").set_value("piers")
    at.run()
    at.switch_page("app_pages/prompts.py")  # Streamlit drops the state of widgets a run did not draw
    at.run()
    at.switch_page("app_pages/documents.py")
    at.run()
    assert at.selectbox(key="documents.kb").value == "piers"
    refreshed = start()  # a new browser session on the same DATA_DIR
    assert refreshed.selectbox(key="documents.kb").value == "piers"
    assert refreshed.session_state["kb"] == "piers"


def test_creating_a_knowledge_base_clears_the_last_report_and_closes_the_form() -> None:
    at = start()
    create_kb(at, "piers")
    upload(at, ("pier_notes.md", NOTES, "text/markdown"))
    assert at.dataframe and "1 file(s) added" in at.success[0].value
    create_kb(at, "farm")
    assert at.selectbox(key="documents.kb").value == "farm"
    assert not at.success  # piers' report is not shown under farm
    assert at.session_state["documents.new_round"] == 2  # each creation draws the popover afresh (closed)
    upload(at, ("barn.txt", b"The north barn holds 40 dairy cows.", "text/plain"))
    assert at.text_input(key="documents.search").placeholder == "A question farm answers"  # not the sample's


def test_upload_a_file_and_see_it_in_the_table() -> None:
    at = start()
    create_kb(at, "piers")
    assert at.selectbox(key="documents.kb").value == "piers"
    upload(at, ("pier_notes.md", NOTES, "text/markdown"))
    report, documents = table(at, 0), table(at, 1)
    assert [(r["File"], r["Result"], r["Chunks"]) for r in report] == [("pier_notes.md", "✅ added", 1)]
    assert [(d["Name"], d["Type"], d["Pages"], d["Chunks"]) for d in documents] == [("pier_notes.md", "markdown", 1, 1)]
    assert "1 file(s) added" in at.success[0].value
    # The uploader is cleared, so a rerun does not add the file again.
    assert not at.file_uploader[0].value


def test_bad_file_is_refused_with_its_reason_and_nothing_is_lost() -> None:
    at = start()
    create_kb(at, "piers")
    upload(at, ("pier_notes.md", NOTES, "text/markdown"))
    upload(at, ("photo.pdf", PNG_BYTES, "application/pdf"), ("empty.txt", b"", "text/plain"))
    report = table(at, 0)
    assert [r["Result"] for r in report] == ["❌ refused", "❌ refused"]
    assert "PNG image" in str(report[0]["Details"]) and "empty" in str(report[1]["Details"])
    assert "2 file(s) refused" in at.warning[0].value
    # The table cuts long text; each refusal's advice is also shown whole.
    shown = [t.value for t in at.text]
    assert any(t.startswith("❌ photo.pdf: ") and str(report[0]["Details"]) in t for t in shown)
    assert [d["Name"] for d in table(at, 1)] == ["pier_notes.md"]


def test_html_in_a_document_is_shown_as_text_never_rendered() -> None:
    at = start()
    create_kb(at, "web")
    payload = b"Plain words. <script>alert('owned')</script> <img src=x onerror=alert(1)>"
    upload(at, ("xss.txt", payload, "text/plain"))
    shown = [t.value for t in at.text]
    assert any("<script>alert('owned')</script>" in t for t in shown)
    assert not any("<script" in m.value for m in at.markdown)


def test_load_sample_then_search_it() -> None:
    at = start()
    at.button(key="documents.load_sample").click()
    at.run()
    assert not at.exception
    assert at.selectbox(key="documents.kb").value == "brackenridge"
    assert sorted(d["Name"] for d in table(at, 1)) == [
        "employee_handbook.pdf",
        "support_and_releases.txt",
        "tidewell_hx4_manual.md",
    ]
    at.text_input(key="documents.search").input("How long is parental leave at full pay?")
    at.run()
    first = next(e for e in at.expander if e.label.startswith("#1"))
    assert "employee_handbook.pdf · page 5" in shown(first.label) and "score" in first.label
    assert "20 weeks" in first.text[0].value


def test_delete_a_document() -> None:
    at = start()
    create_kb(at, "piers")
    upload(at, ("a.md", NOTES, "text/markdown"), ("b.txt", b"The lighthouse is white.", "text/plain"))
    label = next(o for o in at.multiselect(key="documents.delete_pick").options if o.startswith("a.md"))
    at.multiselect(key="documents.delete_pick").set_value([label])
    at.run()
    at.button(key="documents.delete").click()
    at.run()
    assert not at.exception
    assert [d["Name"] for d in at.dataframe[0].value.to_dict("records")] == ["b.txt"]


def test_delete_the_knowledge_base_after_confirming() -> None:
    at = start()
    create_kb(at, "scratch")
    assert at.button(key="documents.delete_kb").disabled
    at.text_input(key="documents.confirm_delete_kb").input("scratch")
    at.run()
    at.button(key="documents.delete_kb").click()
    at.run()
    assert not at.exception
    assert "No knowledge base yet" in at.info[0].value
    assert at.success[0].value == "Deleted the knowledge base scratch and its documents."


def _walk(node):  # type: ignore[no-untyped-def]
    """Every element of the page, in the order shown."""
    for child in getattr(node, "children", {}).values():
        yield child
        yield from _walk(child)


def test_deleting_one_of_two_clears_the_confirmation_and_an_empty_name_errs_at_the_top() -> None:
    at = start()
    create_kb(at, "")
    order = [n.key if n.type == "text_input" else n.type for n in _walk(at.main)]
    assert order.index("error") < order.index("documents.new_name")  # above the fold of the popover
    create_kb(at, "keep")
    create_kb(at, "scratch")
    at.text_input(key="documents.confirm_delete_kb").input("scratch")
    at.run()
    at.button(key="documents.delete_kb").click()
    at.run()
    assert not at.exception
    assert at.success[0].value == "Deleted the knowledge base scratch and its documents."
    assert at.text_input(key="documents.confirm_delete_kb").value == ""
    assert at.selectbox(key="documents.kb").value == "keep"


def test_locked_storage_shows_what_to_do_and_the_page_survives(data_dir: Path) -> None:
    holder = QdrantClient(path=str(data_dir / "qdrant"))
    try:
        at = start()
        assert any("in use by another process" in e.value for e in at.error)
    finally:
        holder.close()


def test_too_many_files_in_one_batch_are_refused_before_anything_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGTUNE_MAX_UPLOAD_FILES", "2")
    at = start()
    create_kb(at, "piers")
    at.file_uploader[0].set_value([(f"{n}.txt", b"The ferry leaves at 08:15.", "text/plain") for n in "abc"])
    at.run()
    assert not at.exception
    assert "3 files chosen; add at most 2 at a time" in at.warning[0].value
    assert not [b for b in at.button if b.key == "documents.add"]


def test_ollama_embedding_models_are_offered_and_the_sidebar_names_the_choice(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = serve_ollama_embeddings(httpserver)
    monkeypatch.setenv("OLLAMA_HOST", httpserver.url_for("/").rstrip("/"))
    at = start()
    picker = at.selectbox(key="documents.model")
    assert picker.options[-2:] == ["bge-m3:latest (Ollama)", "nomic-embed-text:latest (Ollama)"]
    assert not [m for m in picker.options if "llama3.2" in m]  # a chat model does not embed
    picker.set_value("ollama:bge-m3:latest")
    at.selectbox(key="documents.analyser").set_value("chinese")
    create_kb(at, "olla")
    assert {r["model"] for r in requests} == {"bge-m3:latest"}
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert "`olla`: embeddings `ollama:bge-m3:latest` (8 dims)" in sidebar
    assert "keywords: jieba words" in sidebar and "search: hybrid" in sidebar


def test_real_pdf_and_web_page_report_what_was_kept_out_and_the_page_table_lists_it() -> None:
    at = start()
    create_kb(at, "manuals")
    upload(
        at,
        ("debian-reference.pdf", real("debian-reference-pages.pdf"), "application/pdf"),
        ("harbour.html", HTML_PAGE, "text/html"),
    )
    report, documents = table(at, 0), table(at, 1)
    assert [(r["File"], r["Result"], r["Pages"]) for r in report] == [
        ("debian-reference.pdf", "✅ added", 4),
        ("harbour.html", "✅ added", 1),
    ]
    assert "contents page(s) 1 listed but kept out of search" in str(report[0]["Details"])
    pdf = next(d for d in documents if d["Name"] == "debian-reference.pdf")
    assert (pdf["Type"], pdf["Pages not searched"], pdf["OCR"]) == ("pdf", "contents 1", "")
    at.selectbox(key="documents.browse").set_value(next(o for o in at.selectbox(key="documents.browse").options
                                                        if o.startswith("debian-reference.pdf")))  # fmt: skip
    at.run()
    pages = next(e for e in at.expander if e.label.startswith("Pages of "))
    assert "4 in all (contents)" in pages.label
    cards = [e for e in at.expander if "debian-reference.pdf · page" in shown(e.label)]
    assert cards and not any("page 1 ·" in shown(e.label) for e in cards)  # the contents page has no chunk
    assert any("1.1.3 The root account" in shown(e.label) for e in cards)  # the section path on the card


def test_an_upload_cut_short_by_a_refresh_is_said_on_the_next_load(data_dir: Path) -> None:
    """A refresh stops the page's script (Streamlit's StopException): the upload must not vanish silently."""
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException

    from core.config import Settings
    from core.embeddings import load_bundled
    from core.ingest import Upload, ingest
    from core.store import Store
    from core.uploads import recorded

    def refreshed_while_embedding_the_second(done: int, total: int, message: str) -> None:
        if message.startswith("Embedding") and done > 1:
            raise StopException  # what Streamlit raises in the script when the browser goes away

    big = "\n\n".join(f"Berth {i} takes boats up to {i + 5} metres." * 5 for i in range(60)).encode()
    with Store.open(Settings.from_env(), load_bundled()) as store:
        store.create_kb("piers", chunk_size=800, chunk_overlap=120)
        with pytest.raises(StopException), recorded(data_dir, "piers", ["pier_notes.md", "berths.txt"]):
            uploads = [Upload("pier_notes.md", NOTES), Upload("berths.txt", big)]
            ingest(store, "piers", uploads, progress=refreshed_while_embedding_the_second, group_chunks=1)
    at = start()
    [notice] = [w.value for w in at.warning if "was interrupted" in w.value]
    assert "The upload into `piers`" in notice and "Added whole: pier_notes.md." in notice
    assert "Not added: berths.txt; nothing of it was stored in `piers`: add it again." in notice
    assert [d["Name"] for d in table(at, 0)] == ["pier_notes.md"]
    at.run()
    assert any("was interrupted" in w.value for w in at.warning)  # still said on the next click
    upload(at, ("berths.txt", b"Berth 1 takes boats up to 6 metres.", "text/plain"))
    assert not [w for w in at.warning if "was interrupted" in w.value]  # until the next upload
    assert not [w for w in start().warning if "was interrupted" in w.value]  # and said once only
