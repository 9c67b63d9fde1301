"""The app as users run it against the library: one Compare question, in the browser and through Runtime.run.

Run: .venv/bin/python bench/app.py [--rounds 3]

1. The sample knowledge base is ingested into a temporary DATA_DIR.
2. Direct: the PE and RAG presets answer the question through `Runtime.run`, one after the other (as
   they take turns on the embedded model in the app), after one warm-up; median wall time.
3. App: `make run` starts the server exactly as users start it (port from STREAMLIT_SERVER_PORT);
   headless Chromium opens Compare, types the question and clicks Ask; the time from the click to
   both answers' timing lines; median over the rounds.
4. The server's CPU (make, streamlit and children) over 10 s idle with the page open.

Printed: both medians, their ratio (app/direct; the app adds page runs and websocket traffic, not
minutes), and idle CPU as a share of one core (a file watcher over .venv once held it at 100%).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, summary  # noqa: E402
from core.config import Settings  # noqa: E402
from core.embeddings import load_bundled  # noqa: E402
from core.engine import EmbeddedEngine  # noqa: E402
from core.ingest import ingest  # noqa: E402
from core.models import ModelCatalog  # noqa: E402
from core.records import Records  # noqa: E402
from core.samples import ENGLISH  # noqa: E402
from core.store import Store  # noqa: E402
from core.strategies import Runtime, presets  # noqa: E402
from core.template_library import TemplateLibrary  # noqa: E402
from tests.helpers import group_cpu_seconds  # noqa: E402

QUESTION = "How long is parental leave at full pay?"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def direct(settings: Settings, rounds: int) -> float:
    store = Store.open(settings, load_bundled())
    store.create_kb(ENGLISH.kb_name, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    ingest(store, ENGLISH.kb_name, ENGLISH.uploads())
    catalog = ModelCatalog(settings, EmbeddedEngine(), None)
    runtime = Runtime(
        store, TemplateLibrary(settings.data_dir / "templates"), catalog, Records(settings.data_dir / "r.sqlite")
    )
    chosen = presets(catalog.available(), ENGLISH.kb_name)
    times = []
    for n in range(rounds + 1):
        start = time.perf_counter()
        for name in ("PE", "RAG"):
            final = runtime.run(chosen[name].strategy, QUESTION).answer()
            assert not final.error, final
        if n:  # the first round warms up
            times.append(time.perf_counter() - start)
    store.close()
    return statistics.median(times)


def in_browser(settings: Settings, rounds: int, idle_s: float) -> tuple[float, float]:
    from playwright.sync_api import expect, sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATA_DIR": str(settings.data_dir), "STREAMLIT_SERVER_PORT": str(port), "OLLAMA_HOST": "off"}
    server = subprocess.Popen(
        ["make", "--no-print-directory", "run"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            times = []
            for n in range(rounds + 1):
                page.goto(f"{url}/compare")  # a fresh session each round: no earlier answers on the page
                question = page.get_by_label("Question", exact=True)
                expect(question).to_be_visible(timeout=120_000)
                question.fill(QUESTION)
                start = time.perf_counter()
                page.get_by_role("button", name="Ask").click()
                expect(page.get_by_text("first token")).to_have_count(2, timeout=300_000)
                if n:
                    times.append(time.perf_counter() - start)
            before = group_cpu_seconds(server.pid)
            time.sleep(idle_s)
            idle = (group_cpu_seconds(server.pid) - before) / idle_s
            browser.close()
        return statistics.median(times), idle
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-s", type=float, default=10.0, help="how long the idle server's CPU is measured")
    args = parser.parse_args()
    os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="ragtune-bench-app-")
    os.environ["OLLAMA_HOST"] = "off"
    settings = Settings.from_env()
    raw = direct(settings, args.rounds)
    app, idle = in_browser(settings, args.rounds, args.idle_s)
    print(f"Compare, PE + RAG on {QUESTION!r}, median of {args.rounds}:")
    print(f"  Runtime.run directly      {raw:7.2f} s")
    print(f"  make run + Chromium       {app:7.2f} s")
    print(f"  ratio app/direct          {app / raw:7.2f}")
    print(f"  idle server CPU           {idle:7.1%} of one core ({args.idle_s:g} s, page open)")
    summary(Figure("app.browser_over_direct", app / raw, "<=", 2.0), Figure("app.idle_cpu_share", idle, "<=", 0.05))


if __name__ == "__main__":
    main()
