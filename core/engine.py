"""The embedded chat engine: llama.cpp models in this process, loaded lazily, each behind its own lock.

llama.cpp is not thread-safe, so each loaded model carries its own lock and generations on it run one
after another, all on the process's one llama.cpp thread. `EmbeddedEngine` keeps the few most recently
used models (a base with each adapter is one) in memory.

`LlamaCppChat` is a small `BaseChatModel` of our own: `ChatLlamaCpp` lives in langchain-community,
which is being sunset, and we need the exact prompt llama.cpp formats.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from core.background import OneThread
from core.config import cpu_threads
from core.errors import ModelError
from core.prompts import COMPLETION_STOPS, completion_from_messages

log = logging.getLogger(__name__)

# llama.cpp's default is 1.0 (none), Ollama's 1.1. On the 40 sample questions with the RAG preset
# (bench/repeat_penalty.py), 1.0 let 7 answers loop until the token limit and 1.1 none, with the same
# 15/40 correct and answers a third shorter (47.7 -> 30.7 tokens on average).
REPEAT_PENALTY = 1.1
STREAM_INTERVAL_S = 0.02  # how often a stream hands out the text generated since (LlamaCppChat._more_text)
DRAIN_WAIT_S = 0.25  # the longest a finished generation keeps the model for its consumer's last read
T = TypeVar("T")


class LlamaThread(OneThread):
    """The one thread that runs every llama.cpp computation of this process, one call after another.

    llama.cpp's OpenMP thread teams belong to the calling thread, and several callers' teams spin against each
    other: on 2 cores a 55-token SmolLM2 stream took 0.55 s from one thread, 0.7 to 5 s from changing threads
    (app/raw decode 0.43, bench/generate.py). Side by side, CPU generations gain nothing: each uses every core.
    """

    def __init__(self) -> None:
        super().__init__("llama.cpp")

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        try:
            return super().submit(fn, *args)
        except RuntimeError:  # retired between llama_thread() and here: the new thread takes it
            return llama_thread().submit(fn, *args)


_llama: list[LlamaThread] = []
_llama_lock = threading.Lock()


def llama_thread() -> LlamaThread:
    """The process's llama.cpp thread, started on first use (and again after `retire_llama_thread`)."""
    with _llama_lock:
        if not _llama:
            _llama.append(LlamaThread())
        return _llama[0]


def fresh_prompt(llama: Any) -> None:
    """Forget the previous prompt, so that this one is read whole and the answer depends on it alone.

    llama-cpp-python keeps the last prompt's KV cache and re-reads only what differs, down to the last token
    for an identical prompt. Those positions computed one at a time instead of in one batch come out a hair
    different, enough to flip a greedy choice: the same model and RAG prompt, asked right after itself, answered
    2 of 30 Debian Reference questions otherwise (bench/quality.py showed one model 47% and 50% in two columns).
    Reading the shared part again costs tens of milliseconds at most (a system prompt; the rest of a prompt differs).
    """
    llama.reset()


def retire_llama_thread() -> None:
    """End the llama.cpp thread once the calls queued on it are done; the next call starts a new one.

    The OpenMP team llama.cpp ran on stays with that thread, idle, and OpenMP (one runtime: torch's and
    llama.cpp's are the same libgomp) then counts more threads than cores and wakes every team's
    threads the slow way: training after the base answered its replay questions ran at 118-128
    tokens/s instead of 235-260 (20 steps, quiet, /work/scratch/tl2.py). A thread that ends takes its
    team with it, so training calls this first. (llama.cpp built without OpenMP has no such team, but
    decoded at 96 instead of 142 tokens/s: bench/generate.py.)
    """
    with _llama_lock:
        old = _llama.pop() if _llama else None
    if old is not None:
        old.shutdown()


class ModelFile(Protocol):
    """What the engine needs of a catalog entry (`core.models.ModelInfo` is one)."""

    @property
    def label(self) -> str: ...

    @property
    def path(self) -> Path | None: ...

    @property
    def adapter(self) -> Path | None: ...


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
                n_threads=cpu_threads(),
                n_threads_batch=cpu_threads(),  # llama-cpp-python's default takes every core
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
        # A pre-trained base (Gemma 3 270M) has no chat template: it continues a completion-form prompt.
        self.completion = not self.chat_template
        self._formatter = None if self.completion else self._make_formatter()

    def _make_formatter(self) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        vocab = self.llama
        return Jinja2ChatFormatter(
            template=self.chat_template,
            eos_token=vocab.detokenize([vocab.token_eos()]).decode("utf-8", "replace"),
            bos_token=vocab.detokenize([vocab.token_bos()]).decode("utf-8", "replace"),
            stop_token_ids=[vocab.token_eos()],
        )

    def format_prompt(self, messages: list[dict[str, str]]) -> str:
        """The prompt text llama.cpp builds from these messages with the model's own chat template.

        A model without one gets the messages in completion form (`core.prompts.completion_from_messages`).
        """
        if self._formatter is None:
            return completion_from_messages(messages)
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

    def get(self, info: ModelFile) -> LoadedModel:
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
        asked = time.perf_counter()  # queued from now: behind the llama.cpp thread's other calls, then the lock
        drained = threading.Event()  # the last piece is handed out: the model may go to the next caller
        job = llama_thread().submit(self._generate_locked, dicts, prompt, stop, events, (halt, drained), asked)
        pending: list[tuple[str, Any]] = []
        streaming = False  # text was handed out: gather the next pieces for STREAM_INTERVAL_S first
        try:
            while True:
                if streaming and not pending:
                    time.sleep(STREAM_INTERVAL_S)
                kind, value = pending.pop(0) if pending else events.get()
                if kind == "delta":
                    value, streaming = self._more_text(value, events, pending), True
                if kind == "error":
                    raise value
                if kind == "done":
                    drained.set()
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

    @staticmethod
    def _more_text(text: str, events: queue.Queue[tuple[str, Any]], pending: list[tuple[str, Any]]) -> str:
        """`text` and the pieces already waiting after it, as one; the first other event goes to `pending`.

        The first piece goes out at once, then the consumer sleeps `STREAM_INTERVAL_S` before each read: waking
        it for every token took a core from llama.cpp's threads (0.93x raw llama.cpp on 2 cores), and 20 ms is
        still 50 updates a second on the page.
        """
        while True:
            try:
                kind, value = events.get_nowait()
            except queue.Empty:
                return text
            if kind != "delta":
                pending.append((kind, value))
                return text
            text += value

    def _generate_locked(
        self,
        dicts: list[dict[str, str]],
        prompt: str,
        stop: list[str] | None,
        events: queue.Queue[tuple[str, Any]],
        flags: tuple[threading.Event, threading.Event],
        asked: float,
    ) -> None:
        """The generation itself, under the model's lock, on the llama.cpp thread; hands out events.

        `asked`: when the caller asked (the wait for the lock is reported as queued). `flags`: `halt` (the consumer
        is gone) and `drained` (it handed out the last piece; the lock is kept until then, at most `DRAIN_WAIT_S`,
        so the next caller's first piece never comes out before this answer's last).
        """
        halt, drained = flags
        loaded = self.loaded
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
                for delta in self._deltas(loaded, dicts, prompt, stop, halt):
                    if delta:
                        text.append(delta)
                        events.put(("delta", delta))
                if halt.is_set():
                    return
                completion_tokens = loaded.count_tokens_locked("".join(text))
                usage = {
                    "input_tokens": prompt_tokens,
                    "output_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                }
                meta = {"model_name": self.model_id, "model_provider": "llamacpp"}
                events.put(("done", {"usage_metadata": usage, "response_metadata": meta}))
                drained.wait(DRAIN_WAIT_S)
        except Exception as e:  # noqa: BLE001 - raised again in the consumer's thread
            events.put(("error", e))

    def _deltas(
        self,
        loaded: LoadedModel,
        dicts: list[dict[str, str]],
        prompt: str,
        stop: list[str] | None,
        halt: threading.Event,
    ) -> Iterator[str]:
        """The answer's text pieces from llama.cpp: chat completion, or plain completion for a base model.

        A base model writes on past its answer (a list, the next "Question:"): its answer is the first line it
        writes after the completion form's "Answer:", leading blank lines and spaces dropped; the stream stops
        at the line's end or at one of the form's stop words.

        Every answer reads its whole prompt afresh (`fresh_prompt`).
        """
        fresh_prompt(loaded.llama)
        common: dict[str, Any] = {
            "stream": True,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "repeat_penalty": self.repeat_penalty,
        }
        if loaded.completion:
            stream: Any = loaded.llama.create_completion(prompt, stop=[*COMPLETION_STOPS, *(stop or [])], **common)
            key = "text"
        else:
            stream = loaded.llama.create_chat_completion(messages=dicts, stop=stop, **common)  # type: ignore[arg-type]
            key = "delta"
        started = not loaded.completion
        try:
            for part in stream:
                if halt.is_set():
                    return
                raw: Any = part["choices"][0][key]
                piece = str(raw if key == "text" else raw.get("content") or "")
                if not started:
                    piece = piece.lstrip()
                    started = bool(piece)
                if loaded.completion and "\n" in piece:
                    yield piece.split("\n", 1)[0]
                    return
                yield piece
        finally:
            getattr(stream, "close", lambda: None)()

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
