"""OpenAI-compatible server benchmark: the app's path to llama-cpp-python's server against the raw `openai` client.

Run: .venv/bin/python bench/servers.py   (--tiny: 2 questions, short answers, to check it still runs)

Starts `python -m llama_cpp.server` on the bundled SmolLM2 GGUF (as many threads as the embedded model
uses; `interrupt_requests` off, or a second request would cut off the first) and asks the same 10 questions:
- through the embedded model (`Runtime.run` on `llama.cpp:`), for reference;
- through the app's server path (`Runtime.run` on the server's model: the /v1/models check, ChatOpenAI,
  the tokens counted afterwards since this server reports none);
- through the raw `openai` client streaming the same messages.
The server runs are interleaved so that each follows another question (llama.cpp reuses a matching
prompt prefix, which would flatter a run that repeats the one before). Reported: median time to first
token and decode tokens/s (tokens counted with the GGUF's own tokenizer on both sides), and the ratios
app/raw (target: the app adds at most 10%). Then 4 Compare columns on the server at once (`run_many`)
against the same 4 answers one at a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import OpenAIServer, Settings, cpu_threads  # noqa: E402
from core.engine import EmbeddedEngine  # noqa: E402
from core.models import BUNDLED_NAME, ModelCatalog, bundled_gguf  # noqa: E402
from core.records import Records  # noqa: E402
from core.servers.openai import OpenAIBackend  # noqa: E402
from core.strategies import Runtime, Strategy, run_many  # noqa: E402
from core.template_library import TemplateLibrary  # noqa: E402
from tests.openai_fakes import start_llama_server, stop  # noqa: E402

QUESTIONS = [
    "Why do harbours measure the temperature of the sea?",
    "What does a lighthouse keeper do at night?",
    "How does a tide table help a fisherman?",
    "Why is salt water harder to freeze than fresh water?",
    "What is the difference between a river and a canal?",
    "Why do ships have a waterline painted on their hulls?",
    "How do bees find their way back to the hive?",
    "What makes bread rise when it is baked?",
    "Why do leaves change colour in autumn?",
    "How does a compass point north?",
]
TEMPLATE = "Plain question"
ALIAS = "smollm2"


def tokens_of(tokenizer, text: str) -> int:  # type: ignore[no-untyped-def]
    return len(tokenizer.tokenize(text.encode(), add_bos=False, special=True))


def app_run(runtime: Runtime, model: str, question: str, max_tokens: int, tokenizer) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(time to first token, decode tokens/s, total) through `Runtime.run`, as Compare asks.

    Decode runs from the first to the last piece of text; total runs to the finished Answer, which on
    this server comes after the tokens are counted (it reports none).
    """
    start = time.perf_counter()
    first = last = None
    reply = runtime.run(Strategy("bench", model, TEMPLATE, max_tokens=max_tokens), question, save=False)
    for _ in reply:
        last = time.perf_counter()
        first = first or last
    answer = reply.answer()
    end = time.perf_counter()
    assert answer.error is None and first and last, answer.error
    return first - start, (tokens_of(tokenizer, answer.text) - 1) / max(last - first, 1e-9), end - start


def raw_run(client, messages: list[dict[str, str]], max_tokens: int, tokenizer) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(time to first token, decode tokens/s, total) straight from the `openai` client, same request."""
    start = time.perf_counter()
    first = last = None
    parts = []
    stream = client.chat.completions.create(
        model=ALIAS, messages=messages, max_tokens=max_tokens, temperature=0.0, stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
            parts.append(chunk.choices[0].delta.content)
    end = time.perf_counter()
    assert first and last
    return first - start, (tokens_of(tokenizer, "".join(parts)) - 1) / max(last - first, 1e-9), end - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="2 questions, 8-token answers, 2 columns")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    questions = QUESTIONS[:2] if args.tiny else QUESTIONS
    max_tokens = 8 if args.tiny else args.max_tokens
    n_columns = 2 if args.tiny else 4

    import openai
    from llama_cpp import Llama

    threads = cpu_threads()
    tokenizer = Llama(model_path=str(bundled_gguf()), vocab_only=True, verbose=False)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = {
            "model": str(bundled_gguf()),
            "model_alias": ALIAS,
            "n_ctx": 4096,
            "n_threads": threads,
            "n_threads_batch": threads,
        }
        process = start_llama_server({"interrupt_requests": False, "models": [model]}, folder)
        try:
            server = OpenAIServer("bench", f"http://127.0.0.1:{process.port}/v1")  # type: ignore[attr-defined]
            settings = Settings.from_env(data_dir=folder / "data", ollama_host=None, openai_servers=(server,))
            catalog = ModelCatalog(settings, EmbeddedEngine(), None, [OpenAIBackend(server)])
            runtime = Runtime(None, TemplateLibrary(folder / "templates"), catalog, Records(folder / "r.sqlite"))
            client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0)
            template = runtime.templates.get(TEMPLATE)
            served = f"bench:{ALIAS}"
            embedded = f"llama.cpp:{BUNDLED_NAME}"

            # Warm both: the server's first answer pays for its first graph (seconds), the embedded model its load.
            app_run(runtime, served, "Hello?", 4, tokenizer)
            app_run(runtime, embedded, "Hello?", 4, tokenizer)
            raw_run(client, template.render("Hi?", None), 4, tokenizer)

            emb = [app_run(runtime, embedded, q, max_tokens, tokenizer) for q in questions]
            app: list[tuple[float, float, float]] = []
            raw: list[tuple[float, float, float]] = []
            for rnd in range(2):  # each side asks every question once, each run after another question
                for n, q in enumerate(questions):
                    if (n + rnd) % 2 == 0:
                        app.append(app_run(runtime, served, q, max_tokens, tokenizer))
                    else:
                        raw.append(raw_run(client, template.render(q, None), max_tokens, tokenizer))

            print(f"{len(questions)} questions, {max_tokens}-token answers, greedy, {threads} threads, "
                  f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
            rows = [("embedded (Runtime.run)", emb), ("server, app path (Runtime.run)", app), ("server, raw", raw)]
            for label, runs in rows:
                ttft = median([r[0] for r in runs]) * 1000
                tps = median([r[1] for r in runs])
                total = median([r[2] for r in runs])
                print(f"  {label:32} first token p50 {ttft:7.1f} ms · decode {tps:6.1f} tokens/s · total {total:.2f} s")
            ttft_ratio = median([r[0] for r in app]) / median([r[0] for r in raw])
            tps_ratio = median([r[1] for r in raw]) / median([r[1] for r in app])
            total_ratio = median([r[2] for r in app]) / median([r[2] for r in raw])
            print(f"  app / raw on the server: first token x{ttft_ratio:.2f}, decode time x{tps_ratio:.2f}, total "
                  f"x{total_ratio:.2f} with the tokens counted (target: at most 1.10)")  # fmt: skip

            jobs = [(n, Strategy(f"col{n}", served, TEMPLATE, max_tokens=max_tokens)) for n in range(n_columns)]
            # One question for every column, as Compare asks it.
            start = time.perf_counter()
            for _, strategy in jobs:
                last = runtime.run(strategy, questions[-1], save=False).answer()
                assert last.error is None, last
            alone = time.perf_counter() - start
            start = time.perf_counter()
            answers = [e.answer for e in run_many(runtime, jobs, questions[0]) if e.answer is not None]
            together = time.perf_counter() - start
            assert all(a.error is None for a in answers), [a.error for a in answers]
            print(f"  {n_columns} columns on the server: one at a time {alone:.2f} s, at once (run_many) "
                  f"{together:.2f} s, ratio {together / alone:.2f}")  # fmt: skip
        finally:
            stop(process)


if __name__ == "__main__":
    main()
