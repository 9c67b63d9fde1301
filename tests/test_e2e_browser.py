"""The real app in a real browser: `streamlit run app.py` driven by headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def app_url(data_dir: Path, tmp_path: Path) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run installs it with apt-get")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    port = free_port()
    log = (tmp_path / "streamlit.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
        ],  # fmt: skip
        cwd=ROOT,
        env={**os.environ, "DATA_DIR": str(data_dir)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("streamlit did not start:\n" + (tmp_path / "streamlit.log").read_text())
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.mark.timeout(900)
def test_documents_fine_tune_then_compare_all_four_in_a_browser(app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(app_url)
        expect(page.get_by_text("No knowledge base yet")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Qdrant local mode")).to_be_visible()

        page.get_by_role("button", name="Load sample").click()
        expect(page.get_by_text("3 file(s) added")).to_be_visible(timeout=120_000)

        search = page.get_by_label("Search this knowledge base")
        search.fill("How long is parental leave at full pay?")
        search.press("Enter")
        expect(page.get_by_text("employee_handbook.pdf · page 5").first).to_be_visible(timeout=30_000)
        expect(page.get_by_text("20 weeks of parental leave").first).to_be_visible()

        evil = tmp_path / "evil.txt"
        evil.write_text("Gate code is 7781. <script>alert('owned')</script> <img src=x onerror=alert(1)>")
        page.locator("input[type=file]").set_input_files(str(evil))
        page.get_by_role("button", name="Add 1 file(s) to brackenridge").click()
        expect(page.get_by_text("1 file(s) added")).to_be_visible(timeout=60_000)
        search.fill("gate code")
        search.press("Enter")
        expect(page.get_by_text("<script>alert('owned')</script>").first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(tmp_path / "documents.png"), full_page=True)

        # Compare: the four presets side by side on a sample question (FT waits for fine-tuning).
        page.get_by_role("link", name="Compare").click()
        question = page.get_by_label("Question")
        expect(question).to_be_visible(timeout=30_000)
        question.fill("How long is parental leave at full pay?")
        question.press("Enter")
        page.get_by_role("button", name="Ask").click()
        expect(page.get_by_text("first token")).to_have_count(2, timeout=180_000)
        expect(page.get_by_text("No fine-tuned model yet").first).to_be_visible()
        expect(page.get_by_text("employee_handbook.pdf · page 5").first).to_be_visible()
        page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)

        # Fine-tune on the sample facts (a few steps, to keep the test short), then all four side by side.
        page.get_by_role("link", name="Fine-tune").click()
        page.get_by_role("button", name="Load the sample facts").click()
        expect(page.get_by_text("40 pairs · version")).to_be_visible(timeout=30_000)
        page.get_by_text("LoRA settings").click()
        steps = page.get_by_role("spinbutton", name="Max steps")
        steps.fill("4")
        steps.press("Tab")
        page.get_by_role("button", name="Train").click()
        try:
            expect(page.get_by_text("is trained and registered")).to_be_visible(timeout=240_000)
        finally:
            page.screenshot(path=str(tmp_path / "finetune.png"), full_page=True)
        expect(page.get_by_text("leading tokens agree").first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(tmp_path / "finetune.png"), full_page=True)

        page.get_by_role("link", name="Compare").click()
        question = page.get_by_label("Question", exact=True)
        question.fill("How many people does Brackenridge employ?")
        question.press("Enter")
        page.get_by_role("button", name="Ask").click()
        expect(page.get_by_text("first token")).to_have_count(4, timeout=240_000)
        expect(page.get_by_text("No fine-tuned model yet")).to_have_count(0)
        page.screenshot(path=str(tmp_path / "compare-4.png"), full_page=True)
        assert dialogs == []
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
