"""OpenAI-compatible servers where llama-cpp-python's server cannot show it: vLLM's listing and 404, usage sent,
a server that stalls, columns in parallel (pytest-httpserver speaking the chat-completions SSE protocol).
Settings: OPENAI_BASE_URL, OPENAI_API_KEY, the servers file, `off`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from core.config import OpenAIServer, Settings
from core.errors import ConfigError
from core.gemma import GEMMA_NAME
from core.strategies import Strategy, run_many
from tests.openai_fakes import ask, delta, free_port, models, runtime_with, sse, stop_chunk, usage

EMBEDDED_IDS = ["llama.cpp:SmolLM2-135M-Instruct", f"llama.cpp:{GEMMA_NAME}"]  # both embedded bases

QUESTION = "What is the capital of France?"


@pytest.fixture
def threaded() -> Iterator[HTTPServer]:
    """A fake server that answers requests at the same time, as vLLM does."""
    server = HTTPServer(threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def served(httpserver: HTTPServer, name: str = "vllm") -> OpenAIServer:
    return OpenAIServer(name, httpserver.url_for("/v1"), "k")


def test_openai_base_url_and_key_make_the_server_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://gpu-box:8000")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    (server,) = Settings.from_env().openai_servers
    assert (server.name, server.base_url, server.api_key) == ("openai", "http://gpu-box:8000/v1", "sk-local")
    assert "sk-local" not in repr(server)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy/llm/v1/")
    assert Settings.from_env().openai_servers[0].base_url == "http://proxy/llm/v1"


def test_named_servers_come_from_the_settings_file_and_off_disables_all(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    assert Settings.from_env().openai_servers == ()  # nothing configured: none
    data_dir.mkdir(parents=True)
    (data_dir / "servers.json").write_text(
        json.dumps(
            {
                "openai_servers": [
                    {"name": "vllm", "base_url": "http://gpu:8000/v1", "api_key_env": "VLLM_KEY"},
                    {"name": "lmstudio", "base_url": "http://localhost:1234"},
                ]
            }
        )
    )
    monkeypatch.setenv("VLLM_KEY", "from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8080/v1")
    servers = Settings.from_env().openai_servers
    assert [(s.name, s.base_url, s.api_key) for s in servers] == [
        ("openai", "http://localhost:8080/v1", None),
        ("vllm", "http://gpu:8000/v1", "from-env"),
        ("lmstudio", "http://localhost:1234/v1", None),
    ]
    monkeypatch.setenv("OPENAI_BASE_URL", "off")
    assert Settings.from_env().openai_servers == ()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"openai_servers": [{"name": "ollama", "base_url": "http://x"}]}', "not one of"),
        ('{"openai_servers": [{"name": "Has Space", "base_url": "http://x"}]}', "lowercase letters"),
        ('{"openai_servers": [{"base_url": "http://x"}]}', "needs a `name`"),
        ('{"openai_servers": [{"name": "a", "base_url": "gpu:8000"}]}', "not an http"),
        ('{"openai_servers": [{"name": "a", "base_url": "http://x"}, {"name": "a", "base_url": "http://y"}]}', "two"),
        ("[1, 2]", "not a JSON object"),
        ("{not json", "not a JSON object"),
    ],
)
def test_a_bad_servers_file_says_what_to_fix(data_dir: Path, content: str, message: str) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "servers.json").write_text(content)
    with pytest.raises(ConfigError, match=message):
        Settings.from_env()


def test_vllm_lists_adapters_with_their_base(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/v1/models").respond_with_json(
        {
            "object": "list",
            "data": [
                {"id": "Qwen/Qwen2.5-1.5B-Instruct", "object": "model", "max_model_len": 4096, "parent": None},
                {"id": "facts-lora", "object": "model", "parent": "Qwen/Qwen2.5-1.5B-Instruct"},
            ],
        }
    )
    runtime = runtime_with(tmp_path, served(httpserver))
    listed = {m.id: m.label for m in runtime.models.available() if m.backend == "openai"}
    assert listed == {
        "vllm:Qwen/Qwen2.5-1.5B-Instruct": "Qwen/Qwen2.5-1.5B-Instruct (vllm)",
        "vllm:facts-lora": "facts-lora (adapter on Qwen/Qwen2.5-1.5B-Instruct, vllm)",
    }


def test_usage_the_server_reports_is_used_as_reported(httpserver: HTTPServer, tmp_path: Path) -> None:
    seen: list[dict[str, object]] = []

    def chat(request: Request) -> Response:
        seen.append(json.loads(request.data))
        return Response(sse(delta("Par"), delta("is."), stop_chunk(), usage(31, 3)), content_type="text/event-stream")

    httpserver.expect_request("/v1/models").respond_with_json(models("m"))
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_handler(chat)
    runtime = runtime_with(tmp_path, served(httpserver))
    deltas, answer = ask(runtime, "vllm:m", QUESTION, max_tokens=50)
    assert deltas == ["Par", "is."] and answer.error is None
    assert (answer.prompt_tokens, answer.completion_tokens, answer.tokens_counted) == (31, 3, False)
    request = seen[0]
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
    assert request["max_tokens"] == 50 and request["model"] == "m" and request["temperature"] == 0.0
    assert request["messages"] == answer.messages


def test_a_model_vllm_has_not_loaded_is_said_in_words(httpserver: HTTPServer, tmp_path: Path) -> None:
    # Listed a moment ago, unloaded since (vLLM's /v1/unload_lora_adapter): the call gets vLLM's 404.
    httpserver.expect_request("/v1/models").respond_with_json(models("facts-lora"))
    body = {
        "object": "error",
        "message": "The model `facts-lora` does not exist.",
        "type": "NotFoundError",
        "code": 404,
    }
    httpserver.expect_request("/v1/chat/completions").respond_with_json(body, status=404)
    runtime = runtime_with(tmp_path, served(httpserver))
    _, answer = ask(runtime, "vllm:facts-lora", QUESTION)
    assert answer.error is not None
    assert "has no model 'facts-lora' loaded" in answer.error and "does not exist" in answer.error
    assert "/v1/load_lora_adapter" in answer.error


def test_a_context_overflow_vllm_refuses_is_said_in_words(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/v1/models").respond_with_json(models("m", max_model_len=512))
    message = (
        "This model's maximum context length is 512 tokens. However, you requested 2270 tokens (2014 in the "
        "messages, 256 in the completion). Please reduce the length of the messages or completion."
    )
    body = {"object": "error", "message": message, "type": "BadRequestError", "code": 400}
    httpserver.expect_request("/v1/chat/completions").respond_with_json(body, status=400)
    runtime = runtime_with(tmp_path, served(httpserver))
    _, answer = ask(runtime, "vllm:m", "Why? " * 1500, max_tokens=256)
    assert (
        answer.error is not None
        and "too long for vllm:m" in answer.error
        and "maximum context length is 512" in (answer.error)
    )
    assert any("context of 512" in w for w in answer.warnings)  # said before asking, from /v1/models


def test_a_stream_that_stalls_fails_its_column_in_words_and_keeps_the_text(
    threaded: HTTPServer, tmp_path: Path
) -> None:
    release = threading.Event()

    def stalls(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            yield f"data: {json.dumps(delta('Half an'))}\n\n".encode()
            release.wait(10)  # then silence, as a hung server

        return Response(body(), content_type="text/event-stream")

    threaded.expect_request("/v1/models").respond_with_json(models("m"))
    threaded.expect_request("/v1/chat/completions").respond_with_handler(stalls)
    runtime = runtime_with(tmp_path, served(threaded), read_timeout=1.0)
    started = time.perf_counter()
    deltas, answer = ask(runtime, "vllm:m", QUESTION)
    release.set()
    assert time.perf_counter() - started < 8
    assert deltas == ["Half an"] and answer.text == "Half an"
    assert answer.error is not None and "stopped sending" in answer.error and "1 s" in answer.error


def test_columns_on_one_server_run_in_parallel(threaded: HTTPServer, tmp_path: Path) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return Response(sse(delta("ok"), stop_chunk(), usage(5, 1)), content_type="text/event-stream")

    threaded.expect_request("/v1/models").respond_with_json(models("m"))
    threaded.expect_request("/v1/chat/completions").respond_with_handler(slow)
    runtime = runtime_with(tmp_path, served(threaded))
    jobs = [(n, Strategy(f"c{n}", "vllm:m", "Plain question")) for n in range(4)]
    started = time.perf_counter()
    answers = [e.answer for e in run_many(runtime, jobs, QUESTION) if e.answer is not None]
    elapsed = time.perf_counter() - started
    assert [a.text for a in answers] == ["ok"] * 4
    assert elapsed < 3.0, f"4 one-second answers took {elapsed:.1f} s: they ran one after another"


def test_a_stream_cut_off_without_a_finish_reason_is_not_taken_for_an_answer(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    # What llama-cpp-python's server sends to an answer a newer request interrupts: text, then [DONE].
    httpserver.expect_request("/v1/models").respond_with_json(models("m"))
    httpserver.expect_request("/v1/chat/completions").respond_with_data(
        sse(delta("The")), content_type="text/event-stream"
    )
    runtime = runtime_with(tmp_path, served(httpserver))
    _, answer = ask(runtime, "vllm:m", QUESTION)
    assert answer.text == "The"
    assert (
        answer.error is not None and "before it was complete" in answer.error and "interrupt_requests" in answer.error
    )


def test_a_server_that_is_down_hides_only_its_own_models(tmp_path: Path) -> None:
    down = OpenAIServer("down", f"http://127.0.0.1:{free_port()}/v1")
    runtime = runtime_with(tmp_path, down)
    assert [m.id for m in runtime.models.available()] == EMBEDDED_IDS
    assert "not reachable" in runtime.models.server_errors["down"]
    _, answer = ask(runtime, "down:smollm2", QUESTION)
    assert answer.error is not None and "is not reachable" in answer.error and "OPENAI_BASE_URL=off" in answer.error


@pytest.mark.slow
def test_the_sidebar_shows_each_server_and_compare_offers_its_models(httpserver: HTTPServer, data_dir: Path) -> None:
    from tests.helpers import open_app

    httpserver.expect_request("/v1/models").respond_with_json(models("facts-lora"))
    data_dir.mkdir(parents=True, exist_ok=True)
    servers = [
        {"name": "vllm", "base_url": httpserver.url_for("/v1")},
        {"name": "down", "base_url": f"http://127.0.0.1:{free_port()}/v1"},
    ]
    (data_dir / "servers.json").write_text(json.dumps({"openai_servers": servers}))
    at = open_app("app_pages/compare.py")
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert f"✅ `vllm` at {httpserver.url_for('/v1')} (OpenAI-compatible) · 1 model" in sidebar
    assert "⚪ `down` at" in sidebar and "not answering: its models are hidden" in sidebar
    options = at.selectbox(key="compare.col0.PE.model").options
    assert "facts-lora (vllm)" in options and not any("down" in o for o in options)
