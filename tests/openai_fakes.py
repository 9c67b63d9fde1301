"""Helpers for OpenAI-compatible servers: a real llama-cpp-python server on the bundled GGUF, and SSE for fakes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from core.config import OpenAIServer
from core.engine import EmbeddedEngine
from core.models import ModelCatalog
from core.records import Records
from core.servers.openai import OpenAIBackend
from core.strategies import Answer, Runtime, Strategy
from core.template_library import TemplateLibrary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_llama_server(config: dict[str, object], folder: Path, *, wait_s: float = 120) -> subprocess.Popen[bytes]:
    """`python -m llama_cpp.server --config_file` on a free port; returns once /v1/models answers."""
    port = free_port()
    path = folder / "llama-server.json"
    path.write_text(json.dumps({"host": "127.0.0.1", "port": port, **config}))
    log = (folder / "llama-server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--config_file", str(path)], stdout=log, stderr=subprocess.STDOUT
    )
    process.port = port  # type: ignore[attr-defined]
    deadline = time.monotonic() + wait_s
    key = config.get("api_key")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited: {(folder / 'llama-server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=headers, timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("llama_cpp.server did not answer in time")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def runtime_with(tmp_path: Path, *servers: OpenAIServer, read_timeout: float = 120.0) -> Runtime:
    from core.config import Settings

    backends = [OpenAIBackend(s, read_timeout=read_timeout) for s in servers]
    catalog = ModelCatalog(Settings.from_env(openai_servers=servers), EmbeddedEngine(), None, backends)
    return Runtime(None, TemplateLibrary(tmp_path / "templates"), catalog, Records(tmp_path / "records.sqlite"))


def ask(runtime: Runtime, model: str, question: str, *, max_tokens: int = 24) -> tuple[list[str], Answer]:
    reply = runtime.run(Strategy("PE", model, "Plain question", max_tokens=max_tokens), question)
    parts = list(reply)
    return parts, reply.answer()


def sse(*events: dict[str, object]) -> str:
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def stop_chunk(model: str = "m") -> dict[str, object]:
    """The last chunk of a complete answer: no text, a finish reason."""
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    }


def delta(text: str, model: str = "m") -> dict[str, object]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}],
    }


def usage(prompt: int, completion: int, model: str = "m") -> dict[str, object]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def models(*ids: str, **extra: object) -> dict[str, object]:
    return {"object": "list", "data": [{"id": i, "object": "model", "owned_by": "vllm", **extra} for i in ids]}
