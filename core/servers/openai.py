"""OpenAI-compatible chat servers (vLLM, llama.cpp's server, LM Studio, LocalAI): client, timeouts, errors.

Listing and the checks around a call (`/v1/models`, tokenizing, vLLM's adapter endpoints) go through one
`httpx` request helper; answers go through langchain-openai's `ChatOpenAI`. Every library error leaves
this module as a `ModelError` that says what happened and what to do.

Two gaps of some servers are covered here, so the app is fooled by neither:
- llama-cpp-python's server answers with its first model when asked for one it does not have: the
  model is looked up in `/v1/models` before each call.
- Some servers send no usage in a stream even when asked (`stream_usage=True`): the tokens are then
  counted with the server's own tokenizer endpoint, and the answer says they were counted.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel

from core.config import OpenAIServer
from core.errors import ModelError, ModelUnavailableError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 120.0  # the longest silence in an answer, as for Ollama
LIST_TTL = 5.0  # seconds a `/v1/models` listing is trusted before a call checks it again
# Said by llama.cpp ("exceed context window"), vLLM and OpenAI ("maximum context length"), LM Studio.
_CONTEXT = re.compile(r"context (window|length)|maximum context|too many tokens|context_length_exceeded", re.I)


@dataclass(frozen=True)
class ServedModel:
    """One entry of a server's `/v1/models`."""

    id: str
    parent: str | None = None  # vLLM: a LoRA adapter's base model
    max_model_len: int | None = None  # vLLM: the context it serves


class OpenAIBackend:
    """One OpenAI-compatible server."""

    def __init__(
        self, server: OpenAIServer, *, timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT
    ) -> None:
        """Args: `timeout` for connecting and listing; `read_timeout`, the longest silence in an answer."""
        self.server = server
        self.timeout = timeout
        self.read_timeout = read_timeout
        self._listed: tuple[float, list[ServedModel]] | None = None
        self._tokenize_route: str | None = None  # the first tokenizer endpoint that answered
        self._lock = threading.Lock()
        # One connection pool and one chat model per setting, reused: building a client (its SSL context)
        # cost 0.1-0.2 s a call on 2 busy cores, and a kept-alive connection skips the handshake.
        self._http = httpx.Client(headers=self._headers(), timeout=timeout)
        self._chats: dict[tuple[str, float, int], BaseChatModel] = {}

    @property
    def name(self) -> str:
        return self.server.name

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def root_url(self) -> str:
        """The server's address without `/v1`: vLLM's and llama.cpp's extra endpoints live there."""
        return self.base_url.removesuffix("/v1")

    def describe(self) -> str:
        return f"{self.name} at {self.base_url}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.server.api_key}"} if self.server.api_key else {}

    def _request(self, method: str, url: str, *, timeout: float | None = None, **kwargs: Any) -> Any:
        """One HTTP call to the server, its JSON back; every failure as a ModelError in words."""
        try:
            response = self._http.request(method, url, timeout=timeout or self.timeout, **kwargs)
        except httpx.TimeoutException as e:
            raise ModelUnavailableError(
                f"The model server {self.describe()} did not answer in {timeout or self.timeout:g} s; check that "
                "it is running and not overloaded, or set OPENAI_BASE_URL=off."
            ) from e
        except httpx.HTTPError as e:
            raise unreachable(self, e) from e
        if response.status_code in (401, 403):
            raise refused_key(self, response.status_code, _detail(response))
        if response.status_code >= 400:
            raise ModelError(
                f"The model server {self.describe()} answered {method} {url.removeprefix(self.root_url)} with "
                f"HTTP {response.status_code}: {_detail(response)}"
            )
        try:
            return response.json()
        except ValueError as e:
            raise ModelError(
                f"{self.describe()} answered {url} with something other than JSON; is it an OpenAI-compatible server?"
            ) from e

    def list_models(self, *, fresh: bool = False) -> list[ServedModel]:
        """`/v1/models`, cached for a few seconds (a call checks its model against it)."""
        with self._lock:
            if not fresh and self._listed and time.monotonic() - self._listed[0] < LIST_TTL:
                return self._listed[1]
        body = self._request("GET", f"{self.base_url}/models")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise ModelError(f"{self.describe()} listed no `data` in /v1/models; is it an OpenAI-compatible server?")
        models = [
            ServedModel(
                str(m["id"]),
                str(m["parent"]) if m.get("parent") else None,
                int(m["max_model_len"]) if isinstance(m.get("max_model_len"), int) else None,
            )
            for m in data
            if isinstance(m, dict) and m.get("id")
        ]
        with self._lock:
            self._listed = (time.monotonic(), models)
        return models

    def check_model(self, name: str) -> ServedModel:
        """The served model of that id; refused before any call when the server does not list it.

        llama-cpp-python's server answers an unknown name with its first model, silently.
        """
        models = self.list_models()
        found = next((m for m in models if m.id == name), None)
        if found is None:
            models = self.list_models(fresh=True)
            found = next((m for m in models if m.id == name), None)
        if found is None:
            served = ", ".join(m.id for m in models) or "none"
            raise ModelUnavailableError(
                f"{self.describe()} does not serve {name!r} (it serves: {served}). Load it there "
                "(vLLM: `--lora-modules` or /v1/load_lora_adapter; llama.cpp: its config file), or pick another model."
            )
        return found

    def chat(self, name: str, *, temperature: float, max_tokens: int) -> BaseChatModel:
        """langchain-openai's ChatOpenAI on this server, usage asked for in streams, no silent retries.

        Made once per model and setting, then shared: its client is thread-safe.
        """
        key = (name, temperature, max_tokens)
        with self._lock:
            chat = self._chats.get(key)
            if chat is None:
                chat = self._chats[key] = self._new_chat(name, temperature, max_tokens)
        return chat

    def _new_chat(self, name: str, temperature: float, max_tokens: int) -> BaseChatModel:
        import openai
        from langchain_openai import ChatOpenAI

        chat: BaseChatModel = ChatOpenAI(
            model=name,
            base_url=self.base_url,
            # Local servers take any key; the client refuses to start without one.
            api_key=self.server.api_key or "not-needed",  # type: ignore[arg-type]
            temperature=temperature,
            max_tokens=max_tokens,  # type: ignore[call-arg]  # sent as `max_completion_tokens`
            # llama-cpp-python's server ignores `max_completion_tokens` and would answer up to its context.
            extra_body={"max_tokens": max_tokens},
            stream_usage=True,  # off by default once a base URL is set
            timeout=openai.Timeout(self.read_timeout, connect=self.timeout),
            max_retries=0,  # a retry would double a stalled column's wait and hide the error
        )
        return chat

    def count_tokens(self, name: str, text: str) -> int | None:
        """Tokens in `text` by the server's own tokenizer, or None when it has no tokenizer endpoint.

        llama-cpp-python: `/extras/tokenize`; vLLM and llama.cpp's `llama-server`: `/tokenize`.
        """
        routes = [self._tokenize_route] if self._tokenize_route else ["/extras/tokenize", "/tokenize"]
        for route in routes:
            payload = {"model": name, "input": text, "prompt": text, "content": text, "add_special_tokens": False}
            try:
                body = self._request("POST", f"{self.root_url}{route}", json=payload)
            except ModelError:
                continue
            tokens = body.get("tokens") if isinstance(body, dict) else None
            if isinstance(tokens, list):
                self._tokenize_route = route
                return len(tokens)
        return None

    def can_load_adapters(self) -> bool:
        """Whether the server loads LoRA adapters at run time (vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING)."""
        try:
            response = self._http.post(f"{self.root_url}/v1/load_lora_adapter", json={})
        except httpx.HTTPError:
            return False
        # An empty request is refused as invalid (400/422) by a server that has the route; 404 without it.
        return response.status_code in (400, 422)

    def load_adapter(self, name: str, path: str) -> str:
        """Ask the server to load a PEFT adapter folder (a path on the server's machine) as model `name`."""
        body = {"lora_name": name, "lora_path": path}
        try:
            response = self._http.post(f"{self.root_url}/v1/load_lora_adapter", json=body, timeout=self.read_timeout)
        except httpx.HTTPError as e:
            raise unreachable(self, e) from e
        if response.status_code in (401, 403):
            raise refused_key(self, response.status_code, _detail(response))
        if response.status_code >= 400:
            raise ModelError(f"{self.describe()} refused to load {name} from {path}: {_detail(response)}")
        self._listed = None
        return response.text.strip()


def _detail(response: httpx.Response) -> str:
    """The server's own words from an error response (OpenAI's `{"error": {"message"}}` or plain text)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or json.dumps(error))[:300]
        return str(error)[:300]
    return str(body)[:300]


def unreachable(backend: OpenAIBackend, e: Exception) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"The model server {backend.describe()} is not reachable ({type(e).__name__}: {e}); start it, fix "
        "OPENAI_BASE_URL (or the servers file), or set OPENAI_BASE_URL=off."
    )


def refused_key(backend: OpenAIBackend, status: int, detail: str) -> ModelError:
    return ModelError(
        f"The model server {backend.describe()} refused the API key (HTTP {status}: {detail}); set OPENAI_API_KEY "
        "(or the server's `api_key_env` in the servers file) to a key it accepts."
    )


def translate_error(backend: OpenAIBackend, model_id: str, e: Exception) -> ModelError:
    """An exception from a chat call on this server, in words, with what to do."""
    import openai

    if isinstance(e, ModelError):
        return e
    if isinstance(e, openai.APITimeoutError) or _http_error(e, "TimeoutException"):
        return ModelUnavailableError(
            f"{backend.describe()} stopped sending {model_id}'s answer for {backend.read_timeout:g} s "
            f"({type(e).__name__}); it may be loading the model or overloaded. Try again, or pick another model."
        )
    if isinstance(e, openai.APIConnectionError) or _http_error(e, "TransportError"):
        return unreachable(backend, e)
    if isinstance(e, openai.AuthenticationError | openai.PermissionDeniedError):
        return refused_key(backend, e.status_code, _api_message(e))
    if isinstance(e, openai.NotFoundError):
        return ModelUnavailableError(
            f"{backend.describe()} has no model {model_id.split(':', 1)[-1]!r} loaded (HTTP 404: {_api_message(e)}). "
            "Load it there (vLLM: `--lora-modules` or /v1/load_lora_adapter), or pick another model."
        )
    if isinstance(e, openai.APIStatusError) and _CONTEXT.search(_api_message(e)):
        return ModelError(
            f"The prompt is too long for {model_id} on {backend.name}: {_api_message(e)} Lower top-k or the chunk size."
        )
    if isinstance(e, openai.APIStatusError):
        return ModelError(f"{backend.describe()} refused {model_id} (HTTP {e.status_code}): {_api_message(e)}")
    if isinstance(e, ValueError) and "No generation chunks" in str(e):
        # llama-cpp-python's server checks the context only once its stream has begun: it closes it, empty.
        return ModelError(
            f"{backend.describe()} ended {model_id}'s answer without a word or an error. llama-cpp-python's server "
            "does that when the prompt and the answer do not fit the model's context (its log then says 'exceed "
            "context window'): lower top-k or the chunk size, or start the server with a larger n_ctx."
        )
    return ModelError(f"{model_id} failed while answering: {e}")


def unfinished(backend: OpenAIBackend, model_id: str) -> ModelError:
    """The error for an answer whose stream ended without a `finish_reason`: the server cut it off."""
    return ModelError(
        f"{backend.describe()} ended {model_id}'s answer before it was complete (no finish reason). "
        "llama-cpp-python's server does that to an answer when another request arrives: start it with "
        "`--interrupt_requests false` to serve columns one after another, or ask one column at a time."
    )


def _http_error(e: Exception, name: str) -> bool:
    """Whether `e` is httpx's or httpx2's error of that name (or a subclass).

    The openai client runs on httpx2, and a stream read past its timeout raises the transport's error.
    """
    classes = []
    for module in ("httpx", "httpx2"):
        try:
            found = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if isinstance(found, type):
            classes.append(found)
    return isinstance(e, tuple(classes))


def _api_message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return str(getattr(e, "message", e))
