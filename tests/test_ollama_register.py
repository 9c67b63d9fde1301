"""Registering a fine-tuned model with Ollama: blob upload and /api/create, against pytest-httpserver."""

from __future__ import annotations

import hashlib
import json
import re
import socket
from pathlib import Path

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from core import adapters
from core.errors import ModelError, ModelUnavailableError
from core.finetune.ollama_register import ollama_name, register, template_for
from tests import gotemplate

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture
def adapter(tmp_path: Path) -> tuple[adapters.Adapter, Path]:
    """A published adapter folder and a base file: to the protocol both are opaque blobs."""
    base = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    base.write_bytes(b"GGUF base weights " * 1000)
    stage = adapters.staging(tmp_path, "facts-1")
    (stage / adapters.ADAPTER_FILE).write_bytes(b"GGUF lora tensors " * 100)
    manifest = {"name": "facts-1", "created": "2026-11-23T10:00:00+00:00", "system": "Answer briefly."}
    manifest["base"] = {"name": "SmolLM2-135M-Instruct", "file": base.name}
    return adapters.publish(tmp_path, stage, "facts-1", manifest), base


def digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def ollama_has(httpserver: HTTPServer, *paths: Path) -> None:
    for path in paths:
        httpserver.expect_request(f"/api/blobs/{digest(path)}", method="HEAD").respond_with_data("", status=200)


def tags(*names: str) -> dict[str, object]:
    return {"models": [{"name": n, "model": n, "modified_at": "2026-11-23T10:00:00Z", "size": 1} for n in names]}


def test_uploads_missing_blobs_creates_the_model_and_checks_it_is_listed(
    httpserver: HTTPServer, adapter: tuple[adapters.Adapter, Path]
) -> None:
    published, base = adapter
    uploads: dict[str, bytes] = {}
    created: list[dict[str, object]] = []

    def upload(request: Request) -> Response:
        uploads[request.path.rsplit("/", 1)[1]] = request.get_data()
        return Response(status=201)

    def create(request: Request) -> Response:
        created.append(json.loads(request.get_data()))
        steps = ["parsing GGUF", "using existing layer sha256:1", "writing manifest", "success"]
        return Response("".join(json.dumps({"status": s}) + "\n" for s in steps), content_type="application/x-ndjson")

    # Ollama already has the base (uploaded for an earlier adapter), not this adapter.
    httpserver.expect_request(f"/api/blobs/{digest(base)}", method="HEAD").respond_with_data("", status=200)
    adapter_digest = digest(published.path)
    httpserver.expect_request(f"/api/blobs/{adapter_digest}", method="HEAD").respond_with_data("", status=404)
    httpserver.expect_request(f"/api/blobs/{adapter_digest}", method="POST").respond_with_handler(upload)
    httpserver.expect_request("/api/create", method="POST").respond_with_handler(create)
    name = "smollm2-135m-instruct-facts-1"
    httpserver.expect_request("/api/tags").respond_with_json(tags(f"{name}:latest", "llama3.2:1b"))

    progress: list[tuple[str, float]] = []
    result = register(
        published, base, CHAT_TEMPLATE, httpserver.url_for("/"), on_progress=lambda m, f: progress.append((m, f))
    )

    assert result.model == name == ollama_name(published) and result.uploaded == ["adapter"]
    assert uploads == {adapter_digest: published.path.read_bytes()}
    assert created == [
        {
            "model": name,
            "stream": True,
            "files": {base.name: digest(base)},
            "adapters": {"adapter.gguf": adapter_digest},
            "template": template_for(CHAT_TEMPLATE),
            "system": "Answer briefly.",
            "parameters": {"stop": ["<|im_end|>"], "temperature": 0},
        }
    ]
    listed = adapters.get_adapter(published.folder.parent.parent, "facts-1")
    assert listed.manifest.ollama is not None and listed.manifest.ollama.model == name
    messages = [m for m, _ in progress]
    assert messages[0].startswith("Checking which files") and any(
        m.startswith("Uploading the adapter") for m in messages
    )
    assert "Ollama: writing manifest" in messages and messages[-1] == f"Registered {name} with Ollama (base + adapter)."
    fractions = [f for _, f in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_ollama_refusing_the_adapter_is_shown_verbatim_and_nothing_is_recorded(
    httpserver: HTTPServer, adapter: tuple[adapters.Adapter, Path]
) -> None:
    published, base = adapter
    ollama_has(httpserver, base, published.path)
    refusal = "unsupported architecture for adapter: lora tensors must be f16"
    httpserver.expect_request("/api/create", method="POST").respond_with_json({"error": refusal}, status=400)
    with pytest.raises(ModelError, match=f"Ollama refused to create smollm2-135m-instruct-facts-1: {refusal}"):
        register(published, base, CHAT_TEMPLATE, httpserver.url_for("/"))
    assert adapters.get_adapter(published.folder.parent.parent, "facts-1").manifest.ollama is None


def test_a_model_missing_from_the_list_after_create_is_an_error(
    httpserver: HTTPServer, adapter: tuple[adapters.Adapter, Path]
) -> None:
    published, base = adapter
    ollama_has(httpserver, base, published.path)
    success = json.dumps({"status": "success"}) + "\n"
    httpserver.expect_request("/api/create", method="POST").respond_with_data(
        success, content_type="application/x-ndjson"
    )
    httpserver.expect_request("/api/tags").respond_with_json(tags("llama3.2:1b"))
    with pytest.raises(ModelError, match="does not list it"):
        register(published, base, CHAT_TEMPLATE, httpserver.url_for("/"))


def test_unreachable_ollama_says_how_to_start_it(adapter: tuple[adapters.Adapter, Path]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ModelUnavailableError, match="not reachable at http://127.0.0.1:.*ollama serve"):
        register(*adapter, CHAT_TEMPLATE, f"http://127.0.0.1:{port}")


CONVERSATIONS = [
    [{"role": "user", "content": "Who founded Brackenridge?"}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Who founded it?"}],
    [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2 with {{ braces }} and <|im_end|> typed"},
    ],
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}],
]


@pytest.mark.parametrize("messages", CONVERSATIONS, ids=["user", "system", "few-shot", "no-system-turns"])
def test_go_template_renders_turns_like_the_jinja_one(messages: list[dict[str, str]]) -> None:
    """Render both: the Go template as Ollama would (text/template semantics), the Jinja one as llama.cpp does."""
    go = gotemplate.render(
        template_for(CHAT_TEMPLATE), {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages]}
    )
    jinja = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(CHAT_TEMPLATE)
    assert go == jinja.render(messages=messages, add_generation_prompt=True)


def test_the_go_renderer_follows_go_semantics() -> None:
    """The test renderer itself: trimming, range with index, if/else, and a refusal of what it does not know."""
    data = {"Messages": [{"Role": "a"}, {"Role": "b"}], "Name": "x"}
    assert gotemplate.render("x  {{- .Name -}}  y", data) == "xxy"
    assert (
        gotemplate.render("{{ range $i, $m := .Messages }}{{ $i }}{{ .Role }}{{ $.Name }};{{ end }}", data)
        == "0ax;1bx;"
    )
    assert gotemplate.render('{{ if eq .Name "x" }}yes{{ else }}no{{ end }}', data) == "yes"
    assert gotemplate.render('{{ if and (eq 1 1) (ne .Name "x") }}yes{{ else }}no{{ end }}', data) == "no"
    with pytest.raises(ValueError, match="unsupported"):
        gotemplate.render('{{ printf "%s" .Name }}', data)


def test_only_chatml_templates_are_translated() -> None:
    with pytest.raises(ModelError, match="Only ChatML"):
        template_for("{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}")


def test_registration_runs_in_the_background_with_progress(
    httpserver: HTTPServer, adapter: tuple[adapters.Adapter, Path]
) -> None:
    from core.lab.registration import RegistrationJob

    published, base = adapter
    ollama_has(httpserver, base)
    httpserver.expect_request(f"/api/blobs/{digest(published.path)}", method="HEAD").respond_with_data("", status=404)
    httpserver.expect_request(f"/api/blobs/{digest(published.path)}", method="POST").respond_with_data("", status=201)
    success = json.dumps({"status": "success"}) + "\n"
    httpserver.expect_request("/api/create", method="POST").respond_with_data(
        success, content_type="application/x-ndjson"
    )
    name = "smollm2-135m-instruct-facts-1"
    httpserver.expect_request("/api/tags").respond_with_json(tags(name))
    job = RegistrationJob(published, base, CHAT_TEMPLATE, httpserver.url_for("/"))
    assert not job.view().done and job.view().fraction == 0.0
    job.start().join(30)
    view = job.view()
    assert view.done and view.error is None and view.model == name and view.fraction == 1.0
    assert "uploaded: adapter" in view.message and job.adapter.manifest.as_json()["ollama"]["model"] == name


def test_a_failed_background_registration_says_why(adapter: tuple[adapters.Adapter, Path]) -> None:
    from core.lab.registration import RegistrationJob

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    job = RegistrationJob(*adapter, CHAT_TEMPLATE, f"http://127.0.0.1:{port}").start()
    job.join(30)
    view = job.view()
    assert view.done and view.model is None and view.error is not None and "ollama serve" in view.error


def test_a_registration_waits_its_turn_on_the_board_and_is_then_its_latest(
    adapter: tuple[adapters.Adapter, Path],
) -> None:
    from core.errors import BusyError
    from core.lab.board import JobBoard
    from core.lab.registration import latest_registration, start_registration
    from tests.test_lab_board import Waiting

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    board, training = JobBoard(), Waiting()
    board.start("training", training, label="facts-0")
    with pytest.raises(BusyError, match="facts-0 is still training"):
        start_registration(board, *adapter, CHAT_TEMPLATE, f"http://127.0.0.1:{port}")
    assert board.latest("registration") is None
    training.release.set()
    training.join(10)
    data_dir = adapter[1].parent
    job = start_registration(board, *adapter, CHAT_TEMPLATE, f"http://127.0.0.1:{port}", data_dir=data_dir)
    assert board.busy() in (None, "facts-1 is still registering; wait for it or stop it before starting another.")
    job.join(30)
    assert board.latest("registration") is job and job.view().done and board.busy() is None
    assert latest_registration(board, data_dir) is job and latest_registration(board, data_dir / "other") is None


@pytest.mark.slow
def test_when_ollama_refuses_adapters_the_merged_model_is_registered_and_answers_as_the_adapter(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    from core.engine import LoadedModel
    from core.models import bundled_gguf
    from tests.gguf_lora import write_random_lora

    base = bundled_gguf()
    stage = adapters.staging(tmp_path, "facts-2")
    write_random_lora(stage / adapters.ADAPTER_FILE, std=0.05)
    manifest = {"name": "facts-2", "created": "2026-11-23T10:00:00+00:00", "system": "Answer briefly."}
    manifest["base"] = {"name": "SmolLM2-135M-Instruct", "file": base.name}
    published = adapters.publish(tmp_path, stage, "facts-2", manifest)
    name = ollama_name(published)
    created: list[dict[str, object]] = []
    uploads: dict[str, int] = {}
    # Ollama >= 0.34.1's answer to a base plus an adapter (ollama/ollama#14969).
    refusal = "creating a model from a base and an adapter is no longer supported"

    def create(request: Request) -> Response:
        body = json.loads(request.get_data())
        created.append(body)
        if body.get("adapters"):
            return Response(json.dumps({"error": refusal}), status=400, content_type="application/json")
        return Response(json.dumps({"status": "success"}) + "\n", content_type="application/x-ndjson")

    def upload(request: Request) -> Response:
        uploads[request.path.rsplit("/", 1)[1]] = len(request.get_data())
        return Response(status=201)

    ollama_has(httpserver, base, published.path)
    merged = published.folder / "merged-q8_0.gguf"
    httpserver.expect_request("/api/create", method="POST").respond_with_handler(create)
    httpserver.expect_request(re.compile(r"/api/blobs/.*"), method="HEAD").respond_with_data("", status=404)
    httpserver.expect_request(re.compile(r"/api/blobs/.*"), method="POST").respond_with_handler(upload)
    httpserver.expect_request("/api/tags").respond_with_json(tags(f"{name}:latest"))
    progress: list[str] = []
    result = register(
        published, base, CHAT_TEMPLATE, httpserver.url_for("/"), on_progress=lambda m, f: progress.append(m)
    )

    assert result.route == "merged" and merged.is_file()
    assert [bool(c.get("adapters")) for c in created] == [True, False]
    assert created[1]["files"] == {merged.name: digest(merged)} and created[1]["template"] == created[0]["template"]
    assert uploads == {digest(merged): merged.stat().st_size}
    size_mb = f"{merged.stat().st_size / 1e6:.0f} MB"
    assert 100 < merged.stat().st_size / 1e6 < 200  # Q8_0: about a byte a weight for 135M weights
    recorded = adapters.get_adapter(tmp_path, "facts-2").manifest.as_json()["ollama"]
    assert recorded["route"] == "merged" and recorded["merged"].startswith(f"Q8_0, {size_mb}, ")
    assert any(refusal in m and "merging it into the base" in m for m in progress)
    assert progress[-1].startswith(f"Registered {name} with Ollama (a merged model, Q8_0, {size_mb}")
    # The merged file answers as llama.cpp + adapter (the note's parity), and not as the base alone. Not
    # bit for bit: llama.cpp applies an adapter in F32 beside the Q4_1 weights, the merged file is Q8_0.
    agree, compared = map(int, re.search(r"(\d+)/(\d+) parity tokens", recorded["merged"]).groups())  # type: ignore[union-attr]
    assert compared > 0 and agree >= 0.8 * compared, recorded["merged"]
    prompt = [{"role": "user", "content": "What is the capital of France?"}]
    plain = LoadedModel(base).llama.create_chat_completion(messages=prompt, temperature=0, max_tokens=12)  # type: ignore[arg-type]
    whole = LoadedModel(merged).llama.create_chat_completion(messages=prompt, temperature=0, max_tokens=12)  # type: ignore[arg-type]
    assert whole["choices"][0]["message"]["content"] != plain["choices"][0]["message"]["content"]  # type: ignore[index]


def test_a_base_without_a_chat_template_is_registered_in_completion_form(
    httpserver: HTTPServer, adapter: tuple[adapters.Adapter, Path]
) -> None:
    """Gemma 3 270M's adapters: no system prompt, the prompt passed on as the app wrote it, one line answered."""
    from core.finetune.ollama_register import COMPLETION_TEMPLATE

    published, base = adapter
    ollama_has(httpserver, base, published.path)
    created: list[dict[str, object]] = []

    def create(request: Request) -> Response:
        created.append(json.loads(request.get_data()))
        return Response(json.dumps({"status": "success"}) + "\n", content_type="application/x-ndjson")

    httpserver.expect_request("/api/create", method="POST").respond_with_handler(create)
    name = ollama_name(published)
    httpserver.expect_request("/api/tags").respond_with_json(tags(f"{name}:latest"))
    register(published, base, "", httpserver.url_for("/"))

    assert created[0]["template"] == COMPLETION_TEMPLATE and "system" not in created[0]
    assert created[0]["parameters"] == {"stop": ["\n", "Question:", "问题：", "<end_of_turn>"], "temperature": 0}
    prompt = "Question: Who founded it?\nAnswer:"
    assert gotemplate.render(COMPLETION_TEMPLATE, {"Messages": [{"Role": "user", "Content": prompt}]}) == prompt
    recorded = adapters.get_adapter(published.folder.parent.parent, "facts-1").manifest.ollama
    assert recorded is not None and recorded.completion is True
