"""The real app in a real browser: `streamlit run app.py` driven by headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import group_cpu_seconds, real, scanned_pdf

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ARTIFACTS = ROOT / "test-artifacts"


@dataclass
class Server:
    url: str
    pgid: int
    log: Path


@pytest.fixture
def app(data_dir: Path, tmp_path: Path) -> Iterator[Server]:
    """The app started exactly as users start it: `make run` (port from Streamlit's own variable)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run installs it with apt-get")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    port = free_port()
    log_path = tmp_path / "streamlit.log"
    log = log_path.open("w")
    server = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env={**os.environ, "DATA_DIR": str(data_dir), "STREAMLIT_SERVER_PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so streamlit goes with make
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("make run did not start the app:\n" + log_path.read_text())
            time.sleep(0.5)
        yield Server(url, server.pid, log_path)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


@pytest.fixture
def app_url(app: Server) -> str:
    return app.url


def upload(page: Page, path: Path) -> None:
    """Into the page's file uploader, once the last run's (stale, replaced after an upload) is gone."""
    from playwright.sync_api import expect

    files = page.locator("input[type=file]:not([accept*='gz'])")  # not the knowledge-base import's (.jsonl.gz)
    expect(files).to_have_count(1, timeout=30_000)
    files.set_input_files(str(path))


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def add_file(page: Page, path: Path, kb: str) -> None:
    upload(page, path)
    page.get_by_role("button", name=f"Add 1 file(s) to {kb}").click()


def search_for(box: Locator, text: str) -> None:
    box.fill(text)
    box.press("Enter")


def start_evaluation(page: Page, *, questions: int, answers: int) -> None:
    """Open Evaluate, ask `questions` of the set and start it (its button names the `answers` it will ask)."""
    from playwright.sync_api import expect

    page.get_by_role("link", name="Evaluate", exact=True).click()
    limit = page.get_by_role("spinbutton", name="Questions to ask")
    expect(limit).to_be_visible(timeout=60_000)
    limit.fill(str(questions))
    limit.press("Tab")
    page.get_by_role("button", name=f"Evaluate ({answers} answers)").click()


def journey_first_visit(page: Page) -> None:
    """What the app is for, the four strategies, and what to do first."""
    from playwright.sync_api import expect

    expect(page.get_by_text("You have no knowledge base yet")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("🎯📚 Fine-tuning + RAG")).to_be_visible()
    expect(page.get_by_text("Qdrant local mode")).to_be_visible()
    shot(page, "start.png")


def journey_documents(page: Page, tmp_path: Path) -> None:
    """The sample, a search, hostile text, a scanned PDF and a real typeset one."""
    from playwright.sync_api import expect

    page.get_by_role("link", name="Documents").first.click()
    page.get_by_role("button", name="Load sample").click()
    expect(page.get_by_text("3 file(s) added")).to_be_visible(timeout=120_000)

    search = page.get_by_label("Search this knowledge base")
    search_for(search, "How long is parental leave at full pay?")
    expect(page.get_by_text("employee_handbook.pdf · page 5").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("20 weeks of parental leave").first).to_be_visible()

    evil = tmp_path / "evil.txt"
    evil.write_text("Gate code is 7781. <script>alert('owned')</script> <img src=x onerror=alert(1)>")
    add_file(page, evil, "brackenridge")
    expect(page.get_by_text("1 file(s) added")).to_be_visible(timeout=60_000)
    search_for(search, "gate code")
    expect(page.get_by_text("<script>alert('owned')</script>").first).to_be_visible(timeout=30_000)
    scanned = tmp_path / "scan.pdf"
    scanned.write_bytes(scanned_pdf())
    add_file(page, scanned, "brackenridge")
    # The advice the table would cut off is shown in full.
    expect(page.get_by_text("scan.pdf: ").first).to_contain_text("OCR", timeout=60_000)
    # A real typeset PDF (Debian Reference pages): its chunks read with their words apart, under their section.
    manual = tmp_path / "debian-reference.pdf"
    manual.write_bytes(real("debian-reference-pages.pdf"))
    add_file(page, manual, "brackenridge")
    expect(page.get_by_text("1 file(s) added")).to_be_visible(timeout=60_000)
    search_for(search, "Is the root account also called superuser or privileged user?")
    expect(page.get_by_text("debian-reference.pdf · page 3 · GNU/Linux tutorials").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("The root account is also called superuser or privileged user.").first).to_be_visible()
    shot(page, "documents.png")


def journey_compare_two(page: Page) -> None:
    """Typed, then Ask clicked straight away (no Enter, no Tab) must ask."""
    from playwright.sync_api import expect

    page.get_by_role("link", name="Compare").click()
    question = page.get_by_label("Question", exact=True)
    expect(question).to_be_visible(timeout=30_000)
    question.fill("How long is parental leave at full pay?")
    page.get_by_role("button", name="Ask").click()
    expect(page.get_by_text("first token")).to_have_count(2, timeout=180_000)
    expect(page.get_by_text("No fine-tuned model yet").first).to_be_visible()
    expect(page.get_by_text("employee_handbook.pdf · page 5").first).to_be_visible()
    columns = page.locator(".st-key-compare-grid [data-testid='stColumn']")
    widths = [columns.nth(i).bounding_box()["width"] for i in range(4)]  # type: ignore[index]
    assert max(widths[2:]) < 0.6 * min(widths[:2])  # "not yet" columns take little room
    shot(page, "compare.png")


def journey_correct_an_answer(page: Page) -> None:
    """Wrong answer: one click on Save saves."""
    from playwright.sync_api import expect

    page.get_by_role("button", name="Wrong answer").nth(1).click()
    page.get_by_label("Correct answer").fill("20 weeks at full pay.")
    page.get_by_role("button", name="Save correction").click()
    expect(page.get_by_text("Saved the correction to dataset corrections").first).to_be_visible(timeout=30_000)


def journey_prompts(page: Page) -> None:
    """Errors show code as code, no false "must contain {question}", and a save moves the picker."""
    from playwright.sync_api import expect

    page.get_by_role("link", name="Prompts").click()
    user = page.get_by_role("textbox", name="User template")
    expect(user).to_be_visible(timeout=30_000)
    page.wait_for_function("document.body.dataset.commitWhileTyping === 'on'", timeout=30_000)
    user.fill("Tell me {question.__class__}")  # no Tab, no click elsewhere: checked while typing
    error = page.locator("[data-testid='stAlertContentError']").first
    expect(error.locator("code").first).to_have_text("{question.__class__}", timeout=30_000)
    expect(error).not_to_contain_text("must contain")
    user.fill("Answer in one short sentence.\n\n{question}")
    expect(page.get_by_text("Valid template.")).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Save as a new version").click()
    expect(page.get_by_text(re.compile(r"Saved .+ v2\."))).to_be_visible(timeout=30_000)
    expect(page.get_by_role("combobox", name="Version")).to_have_value("2")
    shot(page, "prompts.png")


def journey_fine_tune(page: Page) -> None:
    """The sample facts, a few steps (to keep the test short)."""
    from playwright.sync_api import expect

    page.get_by_role("link", name="Fine-tune").click()
    page.get_by_role("button", name="Load the sample facts").click()
    expect(page.get_by_text("40 pairs · version")).to_be_visible(timeout=30_000)
    page.get_by_text("LoRA settings (the defaults").click()  # the replay line under them names them too
    steps = page.get_by_role("spinbutton", name="Max steps")
    steps.fill("4")
    steps.press("Tab")
    general = page.get_by_role("spinbutton", name="General examples replayed")
    general.fill("2")  # two general questions for the base to answer first, not 80
    general.press("Tab")
    page.get_by_role("button", name="Train").click()
    try:
        expect(page.get_by_text("is trained and registered").first).to_be_visible(timeout=480_000)
    finally:
        shot(page, "finetune.png")
    expect(page.get_by_text("leading tokens agree").first).to_be_visible(timeout=30_000)
    shot(page, "finetune.png")


def journey_compare_four(page: Page) -> None:
    """All four side by side, wrapped on a narrow screen, then stopped while the columns write."""
    from playwright.sync_api import expect

    columns = page.locator(".st-key-compare-grid [data-testid='stColumn']")
    page.get_by_role("link", name="Compare").click()
    question = page.get_by_label("Question", exact=True)
    question.fill("How many people does Brackenridge employ?")
    question.press("Enter")  # Enter asks too
    expect(page.get_by_text("first token")).to_have_count(4, timeout=240_000)
    expect(page.get_by_text("No fine-tuned model yet")).to_have_count(0)
    shot(page, "compare-4.png")
    tops = {round(columns.nth(i).bounding_box()["y"]) for i in range(4)}  # type: ignore[index]
    assert len(tops) == 1, tops  # four on one row on a wide screen
    page.set_viewport_size({"width": 800, "height": 1000})
    page.wait_for_timeout(1000)
    columns = page.locator(".st-key-compare-grid [data-testid='stColumn']")
    narrowest = min(columns.nth(i).bounding_box()["width"] for i in range(4))  # type: ignore[index]
    assert narrowest >= 200, narrowest  # wrapped onto rows, not squeezed letter by letter
    shot(page, "compare-800.png")
    page.set_viewport_size({"width": 1400, "height": 1000})
    # Stop while the columns write: what came so far stays, each unfinished column says it stopped.
    question.fill("What does the travel policy say about meals?")
    question.press("Enter")
    expect(page.get_by_text(re.compile("▌")).first).to_be_visible(timeout=120_000)  # the first column writes
    # Dispatched, not clicked: the button re-renders with every streamed piece, so on a loaded machine it was
    # never "stable" for Playwright's click within 30 s, though a person clicks it at once.
    page.get_by_role("button", name="Stop").dispatch_event("click")
    # (Which columns had finished depends on when the click lands; test_app_compare checks what each keeps.)
    expect(page.get_by_text("Stopped before the answer was complete.").first).to_be_visible(timeout=60_000)
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)
    shot(page, "compare-stopped.png")


def journey_evaluate(page: Page) -> None:
    """All four strategies on two sample questions; the matrix, the charts and a recommendation."""
    from playwright.sync_api import expect

    start_evaluation(page, questions=2, answers=8)
    # Two questions settle nothing: the recommendation says what it rests on instead of naming a winner.
    expect(page.get_by_text("This rests on 2 questions").first).to_be_visible(timeout=480_000)
    expect(page.locator("[data-testid='stVegaLiteChart']").first).to_be_visible(timeout=30_000)
    assert page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").count() >= 4
    shot(page, "evaluate.png")
    page.locator("[data-testid='stVegaLiteChart']").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "evaluate-charts.png"))
    page.get_by_text("This rests on 2 questions").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "evaluate-recommendation.png"))


def journey_another_knowledge_base(page: Page, tmp_path: Path, data_dir: Path) -> None:
    """Another knowledge base chosen on Documents is Compare's, and stays so after a refresh."""
    from playwright.sync_api import expect

    page.get_by_role("link", name="Documents").click()
    page.get_by_role("button", name="New").click()
    page.get_by_role("textbox", name="Name", exact=True).fill("farm")
    page.get_by_role("button", name="Create knowledge base").click()
    expect(page.get_by_text("farm has no documents yet")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("textbox", name="Name", exact=True)).to_have_count(0)  # the New popover closed
    expect(page.get_by_text("3 file(s) added")).to_have_count(0)  # the sample's report is gone
    farm = tmp_path / "farm.txt"
    farm.write_text("The north barn holds 40 dairy cows. Milking starts at 5 am.")
    upload(page, farm)
    page.get_by_role("button", name="Add 1 file(s) to farm").click(timeout=90_000)
    expect(page.get_by_text("1 file(s) added")).to_be_visible(timeout=60_000)
    page.get_by_role("link", name="Compare").click()
    expect(page.get_by_text("📚 farm · top-2").first).to_be_visible(timeout=30_000)
    saved = (data_dir / "preferences.json").read_text()
    page.reload()
    expect(page.get_by_text("📚 farm · top-2").first).to_be_visible(timeout=60_000)
    print("preferences before the refresh:", saved)
    expect(page.get_by_label("Question", exact=True)).to_have_value("What does the travel policy say about meals?")


@pytest.mark.timeout(1200)
def test_a_new_users_journey_in_a_browser(app: Server, tmp_path: Path, data_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(app.url)
        journey_first_visit(page)
        journey_documents(page, tmp_path)
        journey_compare_two(page)
        journey_correct_an_answer(page)
        journey_prompts(page)
        journey_fine_tune(page)
        journey_compare_four(page)
        journey_evaluate(page)
        journey_another_knowledge_base(page, tmp_path, data_dir)
        assert dialogs == []

        # Idle with a session open: the server must not spin (a file watcher over .venv did, at 100%).
        before = group_cpu_seconds(app.pgid)
        time.sleep(5)
        idle = (group_cpu_seconds(app.pgid) - before) / 5
        assert idle < 0.5, f"the idle server used {idle:.0%} of a core"
        assert "Inotify" not in app.log.read_text()
        browser.close()


def widths(page: Page, selector: str) -> list[float]:
    found = page.locator(selector)
    return [box["width"] for i in range(found.count()) if (box := found.nth(i).bounding_box())]


def cut_labels(page: Page, selector: str) -> list[str]:
    """Texts inside `selector` that overflow their box (shown cut, "📦 Loa…")."""
    return page.eval_on_selector_all(
        selector + " *", "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)"
    )


@pytest.mark.timeout(900)
def test_pages_at_800_and_1400_px_keep_labels_words_and_axes_whole(app: Server) -> None:
    """Documents' buttons were cut ("📦 Loa…"), Start's cards broke words, the metrics chart lost its axis
    labels at 800 px; Compare's "not yet" columns wrapped a word a line at 1400 px (issue 24)."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 800, "height": 1000})
        page.goto(f"{app.url}/documents")
        load = page.get_by_role("button", name="Load sample")
        expect(load).to_be_visible(timeout=90_000)
        load.click()
        expect(page.get_by_text("3 file(s) added")).to_be_visible(timeout=180_000)
        assert page.locator("[data-testid='stMain'] button").count() >= 3
        assert cut_labels(page, "[data-testid='stMain'] button") == []
        shot(page, "documents-800.png")

        page.get_by_role("link", name="Start", exact=True).click()
        expect(page.get_by_text("Prompt engineering").first).to_be_visible(timeout=30_000)
        cards = ".st-key-home-strategies [data-testid='stColumn']"
        assert min(widths(page, cards)) >= 170  # two by two, not four columns too narrow for "engineering"
        shot(page, "start-800.png")

        # Evaluate: one question, PE and RAG; the finished run reads done in the picker without a refresh.
        start_evaluation(page, questions=1, answers=2)
        expect(page.locator("[data-testid='stVegaLiteChart']").first).to_be_visible(timeout=300_000)
        expect(page.get_by_role("combobox", name="Run")).to_have_value(re.compile(r"· done$"), timeout=300_000)
        main = page.locator("[data-testid='stMainBlockContainer']").bounding_box()
        charts = widths(page, ".st-key-evaluate-charts [data-testid='stColumn']")
        assert main and min(charts) > 0.8 * main["width"] - 64, (charts, main)  # stacked, each as wide as the page
        page.get_by_text("Metrics by strategy").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "evaluate-charts-800.png"))

        page.set_viewport_size({"width": 1400, "height": 1000})
        page.get_by_role("link", name="Compare", exact=True).click()
        expect(page.get_by_text("No fine-tuned model yet").first).to_be_visible(timeout=60_000)
        notes = page.locator("[class*='st-key-compare-placeholder-'] [data-testid='stAlertContainer']")
        for i in range(notes.count()):
            box = notes.nth(i).bounding_box()
            assert box and box["width"] >= 120 and box["height"] < 130, box  # a few words a line, not one
        shot(page, "compare-1400.png")
        browser.close()


@pytest.mark.timeout(600)
def test_a_refresh_during_an_upload_is_said_on_the_next_load(app: Server, tmp_path: Path) -> None:
    """Refreshing while a file was embedded dropped the upload without a word (issue 24)."""
    from playwright.sync_api import expect, sync_playwright

    notes = tmp_path / "pier_notes.md"
    notes.write_text("# Pier notes\n\nThe ferry to Skellig Mor leaves Pier 4 at 08:15 every weekday.\n")
    berths = tmp_path / "berths.txt"  # thousands of chunks: seconds of embedding to refresh in
    berths.write_text("\n\n".join(f"Berth {i} takes boats of up to {i % 40 + 5} metres. " * 6 for i in range(4000)))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{app.url}/documents")
        upload(page, notes)
        # The upload reruns the page, which names the new knowledge base after the file: a click before that rerun
        # ends lands on the button it replaces (a full run on a loaded machine added nothing for 120 s).
        expect(page.get_by_role("textbox", name="New knowledge base")).to_have_value("pier_notes", timeout=60_000)
        page.get_by_role("button", name=re.compile(r"Create .* and add 1 file")).first.click()
        expect(page.get_by_text("1 file(s) added")).to_be_visible(timeout=120_000)
        upload(page, berths)
        page.get_by_role("button", name=re.compile(r"Add 1 file\(s\) to")).click()
        expect(page.get_by_text(re.compile("Embedding chunks")).first).to_be_visible(timeout=120_000)
        page.reload()
        notice = page.get_by_text(re.compile("was interrupted"))
        expect(notice).to_be_visible(timeout=60_000)
        expect(notice).to_contain_text("Not added: berths.txt; nothing of it was stored")
        expect(page.get_by_text("pier_notes.md").first).to_be_visible()
        shot(page, "documents-interrupted.png")
        page.reload()  # said once: the next session has nothing to say
        expect(page.get_by_text("pier_notes.md").first).to_be_visible(timeout=60_000)
        expect(page.get_by_text(re.compile("was interrupted"))).to_have_count(0)
        browser.close()


def test_a_deep_link_on_a_fresh_server_gets_the_whole_app(app_url: str) -> None:
    """Opening /prompts first (a bookmark, a reload after restart) runs app.py's navigation and sidebar."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(f"{app_url}/prompts")
        expect(page.get_by_text("Valid template.")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Backends")).to_be_visible()
        expect(page.get_by_role("link", name="Compare")).to_be_visible()
        browser.close()
