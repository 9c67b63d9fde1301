"""OpenAI-compatible servers against a real one: llama-cpp-python's server on the bundled SmolLM2.

Its config serves the base and the base with a fine-tuned LoRA adapter (`lora_path`), behind an API key.
The server's own gaps are checked to exist, so the tests show the app is not fooled by them: it sends no
usage in streams, and it answers a model name it does not have with its first model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from core.config import OpenAIServer, cpu_threads
from core.engine import LoadedModel
from core.gemma import GEMMA_NAME
from core.models import bundled_gguf
from core.strategies import Strategy, run_many
from core.template_library import BUILTINS
from tests.gguf_lora import write_random_lora
from tests.openai_fakes import ask, runtime_with, start_llama_server, stop

EMBEDDED_IDS = ["llama.cpp:SmolLM2-135M-Instruct", f"llama.cpp:{GEMMA_NAME}"]  # both embedded bases

pytestmark = pytest.mark.slow
KEY = "s3cret-key"
SYSTEM = next(t for t in BUILTINS if t.name == "Plain question").system
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OpenAIServer, Path]]:
    folder = tmp_path_factory.mktemp("llama-server")
    adapter = write_random_lora(folder / "tiny.gguf")
    gguf = str(bundled_gguf())
    threads = cpu_threads()  # the app's count: fewer under the test suite's workers (tests/conftest.py)
    config = {
        "api_key": KEY,
        "interrupt_requests": False,  # else each request cuts off the one streaming (see the test below)
        "models": [
            {
                "model": gguf,
                "model_alias": "smollm2",
                "n_ctx": 1024,
                "n_threads": threads,
                "n_threads_batch": threads,
                "verbose": False,
            },
            {
                "model": gguf,
                "model_alias": "smollm2-tiny",
                "lora_path": str(adapter),
                "n_ctx": 1024,
                "n_threads": threads,
                "n_threads_batch": threads,
            },
        ],
    }
    process = start_llama_server(config, folder)
    try:
        yield OpenAIServer("llamacpp", f"http://127.0.0.1:{process.port}/v1", KEY), adapter  # type: ignore[attr-defined]
    finally:
        stop(process)


def raw_client(server: OpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.api_key)


def test_the_servers_models_are_listed_beside_the_embedded_ones(server, tmp_path: Path) -> None:
    runtime = runtime_with(tmp_path, server[0])
    ids = [m.id for m in runtime.models.available()]
    assert ids[0] == "llama.cpp:SmolLM2-135M-Instruct"
    assert "llamacpp:smollm2" in ids and "llamacpp:smollm2-tiny" in ids
    assert runtime.models.server_errors == {}


def test_an_answer_streams_and_its_tokens_are_counted_where_the_server_reports_none(server, tmp_path: Path) -> None:
    # The gap is real: asked for usage in the stream, this server sends none.
    stream = raw_client(server[0]).chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": QUESTION}], max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    assert all(chunk.usage is None for chunk in stream)

    runtime = runtime_with(tmp_path, server[0])
    deltas, answer = ask(runtime, "llamacpp:smollm2", QUESTION, max_tokens=12)
    assert answer.error is None, answer.error
    assert len(deltas) > 1 and "".join(deltas) == answer.text and "Paris" in answer.text
    assert answer.tokens_counted
    # Counted by the served model's tokenizer: the embedded copy of the same GGUF agrees.
    local = LoadedModel(bundled_gguf())
    assert answer.completion_tokens == local.count_tokens(answer.text) <= 12  # max_tokens reached the server
    assert answer.prompt_tokens == local.count_tokens("\n".join(m["content"] for m in answer.messages))
    assert answer.ttft_s is not None and 0 < answer.ttft_s <= answer.total_s
    assert '"model": "smollm2"' in answer.prompt  # the exact request is what Compare shows
    saved = runtime.records.answers()[0]
    assert (saved.model, saved.completion_tokens) == ("llamacpp:smollm2", answer.completion_tokens)


def test_an_unknown_model_is_refused_before_asking_though_the_server_would_answer_it(server, tmp_path: Path) -> None:
    # The gap is real: this server answers a name it does not have with its first model.
    reply = raw_client(server[0]).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": QUESTION}], max_tokens=4, temperature=0
    )
    assert reply.choices[0].message.content
    runtime = runtime_with(tmp_path, server[0])
    deltas, answer = ask(runtime, "llamacpp:gpt-4o", QUESTION)
    assert deltas == [] and answer.text == ""
    assert answer.error is not None and "does not serve 'gpt-4o'" in answer.error
    assert "smollm2, smollm2-tiny" in answer.error


def test_a_prompt_over_the_context_is_said_in_words(server, tmp_path: Path) -> None:
    runtime = runtime_with(tmp_path, server[0])
    _, answer = ask(runtime, "llamacpp:smollm2", "Why? " * 1500)
    assert answer.error is not None and "context" in answer.error and "lower top-k" in answer.error


def test_a_wrong_key_is_refused_in_words_and_hides_only_that_servers_models(server, tmp_path: Path) -> None:
    wrong = OpenAIServer("llamacpp", server[0].base_url, "not-the-key")
    runtime = runtime_with(tmp_path, wrong)
    ids = [m.id for m in runtime.models.available()]
    assert ids == EMBEDDED_IDS
    assert "refused the API key" in runtime.models.server_errors["llamacpp"]
    _, answer = ask(runtime, "llamacpp:smollm2", QUESTION)
    assert answer.error is not None and "refused the API key" in answer.error and "OPENAI_API_KEY" in answer.error


def test_columns_on_the_server_and_the_embedded_model_run_together(server, tmp_path: Path) -> None:
    runtime = runtime_with(tmp_path, server[0])
    jobs = [
        (0, Strategy("server", "llamacpp:smollm2", "Plain question", max_tokens=12)),
        (1, Strategy("server too", "llamacpp:smollm2", "Plain question", max_tokens=12)),
        (2, Strategy("embedded", "llama.cpp:SmolLM2-135M-Instruct", "Plain question", max_tokens=12)),
    ]
    answers = {e.key: e.answer for e in run_many(runtime, jobs, QUESTION) if e.answer is not None}
    assert sorted(answers) == [0, 1, 2]
    assert all(a.error is None and a.text for a in answers.values()), {
        k: (a.error, a.text, a.prompt_tokens) for k, a in answers.items()
    }
    # The same GGUF answers alike in-process and on the server (which took the two in turn: not interrupted).
    assert answers[0].text == answers[1].text == answers[2].text


# Last: asking the adapter's model makes the server swap models (seconds), once.
def test_the_fine_tuned_adapter_in_the_servers_config_answers_as_llama_cpp_with_that_adapter(
    server, tmp_path: Path
) -> None:
    runtime = runtime_with(tmp_path, server[0])
    _, base = ask(runtime, "llamacpp:smollm2", QUESTION, max_tokens=16)
    _, tuned = ask(runtime, "llamacpp:smollm2-tiny", QUESTION, max_tokens=16)
    local = LoadedModel(bundled_gguf(), lora_path=server[1])
    out = local.llama.create_chat_completion(
        messages=tuned.messages,
        temperature=0,
        max_tokens=16,
        repeat_penalty=1.1,  # type: ignore[arg-type]
    )
    assert tuned.error is None and base.error is None
    assert tuned.text == out["choices"][0]["message"]["content"]  # type: ignore[index]
    assert tuned.text != base.text
