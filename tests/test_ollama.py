"""Ollama through its documented HTTP API, served by pytest-httpserver (Ollama cannot run here)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from core.config import Settings
from core.engine import EmbeddedEngine
from core.models import ModelCatalog
from core.records import Records
from core.servers.ollama import OllamaServer, num_ctx_for
from core.strategies import Answer, Runtime, Strategy
from core.template_library import TemplateLibrary

TAGS = {
    "models": [
        {
            "name": "llama3.2:1b",
            "model": "llama3.2:1b",
            "modified_at": "2026-10-01T10:00:00Z",
            "size": 1321098329,
            "digest": "baf6a787fdff" + "0" * 52,
            "details": {"format": "gguf", "family": "llama", "parameter_size": "1.2B", "quantization_level": "Q8_0"},
        }
    ]
}


def ndjson(*objects: dict[str, object]) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


def chunk(text: str) -> dict[str, object]:
    return {
        "model": "llama3.2:1b",
        "created_at": "2026-11-23T10:00:00Z",
        "message": {"role": "assistant", "content": text},
        "done": False,
    }


DONE = {
    "model": "llama3.2:1b",
    "created_at": "2026-11-23T10:00:01Z",
    "message": {"role": "assistant", "content": ""},
    "done": True,
    "done_reason": "stop",
    "total_duration": 812000000,
    "load_duration": 1000000,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 100000000,
    "eval_count": 5,
    "eval_duration": 700000000,
}


@pytest.fixture
def runtime_for(tmp_path: Path) -> Iterator[object]:
    def make(host: str) -> Runtime:
        settings = Settings.from_env(ollama_host=host)
        catalog = ModelCatalog(settings, EmbeddedEngine(), OllamaServer(host, timeout=5))
        return Runtime(None, TemplateLibrary(tmp_path / "templates"), catalog, Records(tmp_path / "records.sqlite"))

    yield make


def run(runtime: Runtime, strategy: Strategy, question: str) -> tuple[list[str], Answer]:
    reply = runtime.run(strategy, question)
    parts = list(reply)
    return parts, reply.answer()


def serve_show(httpserver: HTTPServer, context_length: int = 131072) -> None:
    httpserver.expect_request("/api/show", method="POST").respond_with_json(
        {
            "modelfile": "",
            "parameters": "",
            "template": "",
            "details": {},
            "model_info": {"general.architecture": "llama", "llama.context_length": context_length},
        }
    )


def test_listing_offers_ollama_models_next_to_the_embedded_ones(httpserver: HTTPServer, runtime_for) -> None:
    httpserver.expect_request("/api/tags", method="GET").respond_with_json(TAGS)
    runtime = runtime_for(httpserver.url_for("/").rstrip("/"))
    ids = [m.id for m in runtime.models.available()]
    assert "ollama:llama3.2:1b" in ids
    assert any(i.startswith("llama.cpp:") for i in ids)
    assert runtime.models.ollama_error is None


def test_chat_streams_ndjson_and_reports_tokens(httpserver: HTTPServer, runtime_for) -> None:
    seen: list[dict[str, object]] = []

    def chat(request: Request) -> Response:
        seen.append(json.loads(request.data))
        body = ndjson(chunk("Par"), chunk("is"), chunk("."), DONE)
        return Response(body, content_type="application/x-ndjson")

    serve_show(httpserver)
    httpserver.expect_request("/api/chat", method="POST").respond_with_handler(chat)
    runtime = runtime_for(httpserver.url_for("/").rstrip("/"))
    deltas, answer = run(runtime, Strategy("PE", "ollama:llama3.2:1b", "Few-shot assistant"), "Capital of France?")
    assert deltas == ["Par", "is", "."]
    assert answer.error is None and answer.text == "Paris."
    assert (answer.prompt_tokens, answer.completion_tokens) == (26, 5)
    assert answer.ttft_s is not None and answer.ttft_s <= answer.total_s
    request = seen[0]
    assert request["model"] == "llama3.2:1b" and request["stream"] is True
    assert request["messages"] == answer.messages  # the rendered template, few-shot turns included
    options = request["options"]
    assert isinstance(options, dict) and options["num_ctx"] == 2048 and options["temperature"] == 0.0
    assert json.loads(answer.prompt)["options"]["num_ctx"] == 2048
    assert runtime.records.answers()[0].answer == "Paris."


def test_num_ctx_grows_with_the_prompt_and_warns_past_the_model(httpserver: HTTPServer, runtime_for) -> None:
    seen: list[dict[str, object]] = []

    def chat(request: Request) -> Response:
        seen.append(json.loads(request.data))
        return Response(ndjson(chunk("ok"), DONE), content_type="application/x-ndjson")

    serve_show(httpserver, context_length=4096)
    httpserver.expect_request("/api/chat", method="POST").respond_with_handler(chat)
    runtime = runtime_for(httpserver.url_for("/").rstrip("/"))
    long_question = "Why? " * 4000  # about 20,000 characters
    _, answer = run(runtime, Strategy("PE", "ollama:llama3.2:1b", "Plain question"), long_question)
    assert num_ctx_for(20_000, 256) > 4096
    assert seen[0]["options"]["num_ctx"] == 4096  # type: ignore[index]
    assert any("trained on 4096" in w for w in answer.warnings)


@pytest.mark.parametrize(
    ("prompt_chars", "max_tokens", "expected"), [(0, 256, 2048), (6000, 256, 3072), (30000, 512, 11264)]
)
def test_num_ctx_fits_prompt_and_answer(prompt_chars: int, max_tokens: int, expected: int) -> None:
    assert num_ctx_for(prompt_chars, max_tokens) == expected


def test_error_mid_stream_keeps_the_partial_text_and_shows_ollamas_words(httpserver: HTTPServer, runtime_for) -> None:
    body = ndjson(chunk("The answer is"), {"error": "model runner has unexpectedly stopped"})
    serve_show(httpserver)
    httpserver.expect_request("/api/chat", method="POST").respond_with_data(body, content_type="application/x-ndjson")
    runtime = runtime_for(httpserver.url_for("/").rstrip("/"))
    deltas, answer = run(runtime, Strategy("PE", "ollama:llama3.2:1b", "Plain question"), "Why?")
    assert deltas == ["The answer is"] and answer.text == "The answer is"
    assert answer.error is not None and "model runner has unexpectedly stopped" in answer.error


def test_missing_model_says_how_to_get_it(httpserver: HTTPServer, runtime_for) -> None:
    serve_show(httpserver)
    httpserver.expect_request("/api/chat", method="POST").respond_with_json(
        {"error": 'model "qwen9:70b" not found, try pulling it first'}, status=404
    )
    runtime = runtime_for(httpserver.url_for("/").rstrip("/"))
    _, answer = run(runtime, Strategy("PE", "ollama:qwen9:70b", "Plain question"), "Hi")
    assert answer.error is not None
    assert 'model "qwen9:70b" not found' in answer.error and "ollama pull qwen9:70b" in answer.error


def test_connection_refused_keeps_embedded_models_and_explains(runtime_for) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runtime = runtime_for(f"http://127.0.0.1:{port}")
    models = runtime.models.available()
    assert models and all(m.backend == "llama.cpp" for m in models)
    assert runtime.models.ollama_error is not None and "ollama serve" in runtime.models.ollama_error
    _, answer = run(runtime, Strategy("PE", "ollama:llama3.2:1b", "Plain question"), "Hi")
    assert answer.error is not None and "not reachable" in answer.error and "ollama serve" in answer.error


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "http://localhost:11434"),
        ("", "http://localhost:11434"),
        ("gpu-box", "http://gpu-box:11434"),
        ("0.0.0.0:9999", "http://0.0.0.0:9999"),
        ("https://ollama.example.com", "https://ollama.example.com:443"),
        ("http://proxy.example.com/ollama", "http://proxy.example.com:80/ollama"),
        ("http://proxy.example.com:8080/ollama/", "http://proxy.example.com:8080/ollama"),
        ("off", None),
        ("OFF", None),
    ],
)
def test_ollama_host_is_read_like_the_ollama_client(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: str | None
) -> None:
    """The client's own parsing decides the URL every request goes to: what `ollama.Client` sends to."""
    if raw is None:
        monkeypatch.delenv("OLLAMA_HOST", raising=False)
    else:
        monkeypatch.setenv("OLLAMA_HOST", raw)
    host = Settings.from_env().ollama_host
    if expected is None:
        assert host is None
        return
    assert host is not None
    base_url = OllamaServer(host).client()._client.base_url
    assert str(base_url).rstrip("/") == str(httpx.URL(expected))  # httpx drops a scheme's default port


def test_a_path_in_ollama_host_reaches_the_server(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a reverse proxy at /ollama, requests go to /ollama/api/..., not /api/..."""
    httpserver.expect_request("/ollama/api/tags", method="GET").respond_with_json(TAGS)
    monkeypatch.setenv("OLLAMA_HOST", httpserver.url_for("/ollama"))
    server = OllamaServer(Settings.from_env().ollama_host or "")
    assert server.model_names() == ["llama3.2:1b"]


def test_ollama_columns_run_in_parallel(runtime_for) -> None:
    """Unlike the embedded model, Ollama columns do not take turns: their requests overlap."""
    import threading
    import time

    from core.strategies import run_many

    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def slow_chat(request: Request) -> Response:
        start = time.monotonic()
        time.sleep(0.4)  # a model thinking
        with lock:
            spans.append((start, time.monotonic()))
        return Response(ndjson(chunk("ok"), DONE), content_type="application/x-ndjson")

    server = HTTPServer(threaded=True)
    server.expect_request("/api/show", method="POST").respond_with_json({"model_info": {}})
    server.expect_request("/api/chat", method="POST").respond_with_handler(slow_chat)
    server.start()
    try:
        runtime = runtime_for(server.url_for("/").rstrip("/"))
        jobs = [(i, Strategy(f"O{i}", "ollama:llama3.2:1b", "Plain question")) for i in range(2)]
        answers = [e.answer for e in run_many(runtime, jobs, "Hi") if e.answer is not None]
    finally:
        server.clear()
        server.stop()
    assert [a.error for a in answers] == [None, None]
    (a_start, a_end), (b_start, b_end) = sorted(spans)
    assert b_start < a_end  # the second request began before the first was answered


def test_gguf_files_in_data_dir_models_are_listed(data_dir: Path) -> None:
    from core.gemma import GEMMA_NAME
    from core.models import bundled_gguf, embedded_models

    (data_dir / "models").mkdir(parents=True)
    (data_dir / "models" / "my-tuned-model.gguf").symlink_to(bundled_gguf())
    (data_dir / "models" / "notes.txt").write_text("not a model")
    ids = [m.id for m in embedded_models(Settings.from_env())]
    assert ids == ["llama.cpp:SmolLM2-135M-Instruct", f"llama.cpp:{GEMMA_NAME}", "llama.cpp:my-tuned-model.gguf"]


def _serve_two_models(slow_chat: object) -> HTTPServer:
    """`fast:1b` answers at once; `slow:70b` is handled by `slow_chat` (threaded: requests overlap)."""

    def chat(request: Request) -> Response:
        if json.loads(request.data)["model"] == "slow:70b":
            return slow_chat(request)  # type: ignore[operator, no-any-return]
        return Response(ndjson(chunk("ok"), DONE), content_type="application/x-ndjson")

    server = HTTPServer(threaded=True)
    server.expect_request("/api/show", method="POST").respond_with_json({"model_info": {}})
    server.expect_request("/api/chat", method="POST").respond_with_handler(chat)
    server.start()
    return server


def _columns(host: str, tmp_path: Path, read_timeout: float = 30) -> dict[str, Answer]:
    from core.strategies import run_many

    catalog = ModelCatalog(
        Settings.from_env(ollama_host=host), EmbeddedEngine(), OllamaServer(host, read_timeout=read_timeout)
    )
    runtime = Runtime(None, TemplateLibrary(tmp_path / "t"), catalog, Records(tmp_path / "r.sqlite"))
    jobs = [(m, Strategy(m, f"ollama:{m}", "Plain question")) for m in ("slow:70b", "fast:1b")]
    return {e.key: e.answer for e in run_many(runtime, jobs, "Hi") if e.answer is not None}


def test_a_silent_ollama_fails_its_column_after_the_read_timeout_and_others_finish(tmp_path: Path) -> None:
    release = threading.Event()

    def hang(request: Request) -> Response:
        release.wait(30)  # a server that accepted the request and never answers
        return Response(ndjson(DONE), content_type="application/x-ndjson")

    server = _serve_two_models(hang)
    try:
        answers = _columns(server.url_for("/").rstrip("/"), tmp_path, read_timeout=1)
    finally:
        release.set()
        server.clear()
        server.stop()
    assert answers["fast:1b"].error is None and answers["fast:1b"].text == "ok"
    slow = answers["slow:70b"]
    assert slow.error is not None and "did not answer ollama:slow:70b in time" in slow.error


def test_ollama_dropping_the_connection_mid_answer_keeps_the_text_and_says_so(tmp_path: Path) -> None:
    """The server process dies after the first token: a truncated chunked body, then a closed socket."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(2):  # /api/show, then /api/chat
            conn, _ = listener.accept()
            with conn:
                request = conn.recv(65536).decode("latin-1")
                if request.startswith("POST /api/show"):
                    body = json.dumps({"model_info": {}}).encode()
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                        + str(len(body)).encode()
                        + b"\r\nConnection: close\r\n\r\n"
                        + body
                    )
                    continue
                line = (json.dumps(chunk("The answer is")) + "\n").encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(line):x}\r\n".encode() + line + b"\r\n"
                )
        listener.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    host = f"http://127.0.0.1:{port}"
    catalog = ModelCatalog(Settings.from_env(ollama_host=host), EmbeddedEngine(), OllamaServer(host))
    runtime = Runtime(None, TemplateLibrary(tmp_path / "t"), catalog, Records(tmp_path / "r.sqlite"))
    deltas, answer = run(runtime, Strategy("PE", "ollama:llama3.2:1b", "Plain question"), "Why?")
    server.join(10)
    assert deltas == ["The answer is"] and answer.text == "The answer is"
    assert answer.error is not None and "dropped the connection" in answer.error


def test_ollama_refusing_one_model_fails_only_that_column(tmp_path: Path) -> None:
    def refuse(request: Request) -> Response:
        return Response(json.dumps({"error": "model requires more system memory (64 GiB) than is available"}), 500)

    server = _serve_two_models(refuse)
    try:
        answers = _columns(server.url_for("/").rstrip("/"), tmp_path)
    finally:
        server.clear()
        server.stop()
    assert answers["fast:1b"].error is None and answers["fast:1b"].text == "ok"
    assert answers["slow:70b"].error == (
        "Ollama refused ollama:slow:70b: model requires more system memory (64 GiB) than is available."
    )


def test_a_registered_gemma_adapter_is_sent_the_completion_form_it_was_trained_on(
    httpserver: HTTPServer, runtime_for
) -> None:
    """An adapter on a base without a chat template, registered with Ollama: the catalog knows the Ollama model
    by its manifest, and the strategy sends it `render_completion`'s text, which Ollama's template passes on."""
    from core import adapters
    from core.finetune.ollama_register import COMPLETION_TEMPLATE
    from core.template_library import BUILTINS
    from tests import gotemplate

    name = "gemma-3-270m-facts-zh"
    runtime = runtime_for(httpserver.url_for("/").rstrip("/"))
    data_dir = runtime.models.settings.data_dir
    stage = adapters.staging(data_dir, "facts-zh")
    (stage / adapters.ADAPTER_FILE).write_bytes(b"GGUF lora")
    manifest = {"name": "facts-zh", "created": "2026-12-03T07:00:00+00:00", "base": {"name": "gemma-3-270m",
                "file": "gemma-3-270m.gguf"}, "ollama": {"host": "h", "model": name, "registered": "now",
                "completion": True}}  # fmt: skip
    adapters.publish(data_dir, stage, "facts-zh", manifest)
    tags = {"models": [{**TAGS["models"][0], "name": f"{name}:latest", "model": f"{name}:latest"}, TAGS["models"][0]]}
    httpserver.expect_request("/api/tags", method="GET").respond_with_json(tags)
    seen: list[dict[str, object]] = []

    def chat(request: Request) -> Response:
        seen.append(json.loads(request.data))
        return Response(ndjson(chunk(" 青色的。"), DONE), content_type="application/x-ndjson")

    serve_show(httpserver)
    httpserver.expect_request("/api/chat", method="POST").respond_with_handler(chat)

    kinds = {m.id: m.completion for m in runtime.models.available() if m.backend == "ollama"}
    assert kinds == {f"ollama:{name}:latest": True, "ollama:llama3.2:1b": False}
    _, answer = run(runtime, Strategy("FT", f"ollama:{name}:latest", "Plain question"), "莫拉文灯塔是什么颜色？")
    template = next(t for t in BUILTINS if t.name == "Plain question")
    sent = seen[0]["messages"]
    assert sent == [{"role": "user", "content": template.render_completion("莫拉文灯塔是什么颜色？")}]
    assert gotemplate.render(COMPLETION_TEMPLATE, {"Messages": [{"Role": "user", "Content": sent[0]["content"]}]}) \
        == "问题：莫拉文灯塔是什么颜色？\n答案："  # fmt: skip
    assert answer.text.strip() == "青色的。"
