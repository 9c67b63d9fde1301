"""Strategies: model + template + retrieval settings; `Runtime.run` gives a `Reply`: the text, then the Answer."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple, TypeVar

from core.errors import AppError, KnowledgeBaseError, ModelError
from core.files import now_iso
from core.language import holds_chinese
from core.models import CHINESE_BASE, ModelCatalog, ModelInfo
from core.progress import CancelFlag
from core.prompts import Source
from core.rag_preset import RagPreset
from core.records import Records
from core.store import SearchHit, Store
from core.template_library import TemplateLibrary
from core.text import is_cjk

log = logging.getLogger(__name__)

K = TypeVar("K")
PE_TEMPLATE = "Few-shot assistant"


RAG_TEMPLATE = "RAG with citations"
FT_TEMPLATE = "Plain question"
RAG_TOP_K = 2
STOPPED = "Stopped before the answer was complete."  # an answer cut short by Stop


@dataclass(frozen=True)
class Strategy:
    name: str
    model: str
    template: str
    template_version: int | None = None
    retrieval: bool = False
    kb: str | None = None
    top_k: int = 4
    score_threshold: float | None = None
    retrieval_mode: str | None = None  # dense, sparse or hybrid; None: the knowledge base's own
    temperature: float = 0.0
    max_tokens: int = 256


@dataclass
class Answer:
    question: str
    strategy: Strategy
    text: str = ""
    sources: list[SearchHit] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    prompt: str = ""
    ttft_s: float | None = None  # from the start of the run, not counting time queued for the model
    total_s: float = 0.0
    queued_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_counted: bool = False  # the server reported no usage: the app counted them with its tokenizer
    template_version: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Preset:
    """A ready-made strategy, or the reason it cannot run yet."""

    strategy: Strategy
    disabled_reason: str | None = None


# The four strategies in the order every page lists them: the seed's PE, RAG, FT and FT + RAG.
PRESET_ORDER: tuple[str, ...] = ("PE", "RAG", "FT", "FT+RAG")


def reads_chinese(store: Store | None, kb: str | None, questions: Iterable[str] = ()) -> bool:
    """Whether the answers here should be Chinese: a question is, or the knowledge base holds Chinese text."""
    if any(is_cjk(q) for q in questions):
        return True
    if store is None or not kb:
        return False
    try:
        return holds_chinese(store, kb)
    except AppError:  # a missing knowledge base is reported where it is used
        return False


def presets(
    catalog: list[ModelInfo], kb: str | None, rag: RagPreset | None = None, *, chinese: bool = False
) -> dict[str, Preset]:
    """PE, RAG, FT and FT+RAG, built from what exists now (FT needs a fine-tuned model).

    FT takes the newest model trained on plain facts, FT+RAG the newest trained inside the RAG prompt (a Joint
    model answers 0-5% of the sample sets' questions without retrieval, bench/quality.py); each takes the newest
    fine-tuned model when there is none of its kind.

    Args:
        rag: the saved RAG settings (`core.rag_preset.load_rag_preset`); None: the built-in ones.
        chinese: Chinese questions or a Chinese knowledge base (`reads_chinese`): the base is the embedded
            model that answers Chinese best (`core.models.CHINESE_BASE`) when it is installed.
    """
    bases = [m for m in catalog if not m.fine_tuned]
    preferred = f"llama.cpp:{CHINESE_BASE}" if chinese else None
    base = next((m for m in bases if m.id == preferred), bases[0] if bases else None)
    tuned = [m for m in catalog if m.fine_tuned]
    base_id = base.id if base else ""
    no_kb = None if kb else "Create a knowledge base on the Documents page first."
    no_ft = None if tuned else "No fine-tuned model yet: train one on the Fine-tune page."
    plain, reading = [m for m in tuned if not m.reads_context], [m for m in tuned if m.reads_context]
    ft_id = (plain or tuned)[-1].id if tuned else base_id
    ft_rag_id = (reading or tuned)[-1].id if tuned else base_id
    # Top-2 of excerpts (the RAG template's {excerpt}: a chunk's best sentence and the next): on 20 sample
    # questions 14 right at top-2, 13 at top-3; whole chunks, numbered, got 0 of 10 (bench/quality.py).
    k, threshold, template = (rag.top_k, rag.score_threshold, rag.template) if rag else (RAG_TOP_K, None, RAG_TEMPLATE)
    rag_strategy = Strategy("RAG", base_id, template, retrieval=True, kb=kb, top_k=k, score_threshold=threshold)
    return {
        "PE": Preset(Strategy("PE", base_id, PE_TEMPLATE)),
        "RAG": Preset(rag_strategy, no_kb),
        "FT": Preset(Strategy("FT", ft_id, FT_TEMPLATE), no_ft),
        "FT+RAG": Preset(replace(rag_strategy, name="FT+RAG", model=ft_rag_id), no_ft or no_kb),
    }


class Reply:
    """One strategy's answer as it comes (`Runtime.run`): iterate it for the text, then ask `answer()`.

    As simonw/llm's `Response`: the model runs while the reply is read, once. `answer()` reads what is
    left first, so it can be asked without iterating; the Answer holds the whole text, the sources, the
    prompt, the timings and any error.
    """

    def __init__(self, answer: Answer, pieces: Iterator[str]) -> None:
        self._answer = answer
        self._pieces = pieces

    def __iter__(self) -> Iterator[str]:
        return self._pieces  # the stream itself: no work per piece on top of it (bench/generate.py)

    def answer(self) -> Answer:
        """The finished Answer (the text not read yet is read first)."""
        for _ in self._pieces:
            pass
        return self._answer


class Runtime:
    """What strategies run against: the store, the templates, the models and the records."""

    def __init__(self, store: Store | None, templates: TemplateLibrary, models: ModelCatalog, records: Records) -> None:
        self.store = store
        self.templates = templates
        self.models = models
        self.records = records

    def run(self, strategy: Strategy, question: str, *, stop: CancelFlag | None = None, save: bool = True) -> Reply:
        """Retrieve (if on), render, stream from the model: a `Reply` to iterate for the text, then ask for its Answer.

        Nothing runs before the reply is read. Errors end in the Answer, never raised; `stop` ends the text between
        pieces (the Answer then says so).

        Args:
            save: keep the answer in the history (an evaluation stores its answers itself).
        """
        answer = Answer(question=question, strategy=strategy)
        return Reply(answer, self._stream(strategy, question, answer, stop, save))

    def _stream(
        self, strategy: Strategy, question: str, answer: Answer, stop: CancelFlag | None, save: bool
    ) -> Iterator[str]:
        started = time.perf_counter()
        try:
            for delta in self._run(strategy, question, answer, started):
                if stop is not None and stop.is_set():
                    answer.error = STOPPED
                    break
                yield delta
        except AppError as e:
            answer.error = str(e)
        answer.total_s = time.perf_counter() - started - answer.queued_s
        if save:
            self._save(answer)

    def _run(self, strategy: Strategy, question: str, answer: Answer, started: float) -> Iterator[str]:
        if not question.strip():
            raise ModelError("Type a question first.")
        template = self.templates.get(strategy.template, strategy.template_version)
        answer.template_version = template.version
        sources = None
        if strategy.retrieval:
            if self.store is None or not strategy.kb:
                raise KnowledgeBaseError(
                    "Retrieval is on but no knowledge base is chosen; pick one or turn retrieval off."
                )
            answer.sources = self.store.search(
                strategy.kb,
                question,
                k=strategy.top_k,
                score_threshold=strategy.score_threshold,
                mode=strategy.retrieval_mode,
            )
            sources = [Source(h.filename, h.page, h.text, h.heading) for h in answer.sources]
        if self.models.info(strategy.model).completion:  # a base model: one text to continue, not a chat
            answer.messages = [{"role": "user", "content": template.render_completion(question, sources)}]
        else:
            answer.messages = template.render(question, sources)
        prepared = self.models.prepare(
            strategy.model, answer.messages, temperature=strategy.temperature, max_tokens=strategy.max_tokens
        )
        answer.prompt = prepared.prompt
        answer.warnings += prepared.warnings
        usage: dict[str, Any] = {}
        finished = False
        try:
            for chunk in prepared.chat.stream([(m["role"], m["content"]) for m in answer.messages]):
                answer.queued_s += float(chunk.response_metadata.get("queued_s", 0.0))
                finished = finished or bool(chunk.response_metadata.get("finish_reason"))
                usage = dict(chunk.usage_metadata or usage)  # sent on the last chunk, where the server does
                delta = str(chunk.content)
                if delta:
                    if answer.ttft_s is None:
                        answer.ttft_s = time.perf_counter() - started - answer.queued_s
                    answer.text += delta
                    yield delta
        except Exception as e:  # noqa: BLE001 - translated at the boundary; the partial text stays
            raise self.models.translate(strategy.model, e) from e
        if prepared.unfinished is not None and not finished:
            raise prepared.unfinished
        answer.prompt_tokens = usage.get("input_tokens")
        answer.completion_tokens = usage.get("output_tokens")
        if not usage and prepared.count_tokens is not None:
            # The message texts, without the chat template's few tokens of markup around each.
            prompt_tokens = prepared.count_tokens("\n".join(m["content"] for m in answer.messages))
            completion_tokens = prepared.count_tokens(answer.text) if answer.text else 0
            if prompt_tokens is not None and completion_tokens is not None:
                answer.prompt_tokens, answer.completion_tokens = prompt_tokens, completion_tokens
                answer.tokens_counted = True

    def _save(self, answer: Answer) -> None:
        try:
            self.records.add_answer(answer_record(answer))
        except Exception:  # noqa: BLE001 - a history hiccup must not lose the answer on screen
            log.exception("Could not save the answer to records")


def answer_record(answer: Answer) -> dict[str, Any]:
    """An answer as a row of the records' `answers` table."""
    return {
        "created": now_iso(),
        "question": answer.question,
        "strategy": answer.strategy.name,
        "model": answer.strategy.model,
        "template": answer.strategy.template,
        "template_version": answer.template_version,
        "answer": answer.text,
        "error": answer.error,
        "ttft_s": answer.ttft_s,
        "total_s": answer.total_s,
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "detail": {
            "strategy": asdict(answer.strategy),
            "sources": [asdict(s) for s in answer.sources],
            "messages": answer.messages,
            "prompt": answer.prompt,
            "queued_s": answer.queued_s,
            "tokens_counted": answer.tokens_counted,
            "warnings": answer.warnings,
        },
    }


class Event(NamedTuple):
    """What `run_many` yields: a strategy's key with a piece of its text, or, once, with its finished Answer."""

    key: Any
    text: str = ""
    answer: Answer | None = None


def run_many(runtime: Runtime, jobs: Sequence[tuple[K, Strategy]], question: str) -> Iterator[Event]:
    """Run several strategies at once, yielding their text pieces and then each one's Answer as they come.

    Each runs in its own thread: those on one embedded model take turns on its lock, those on
    Ollama run in parallel. Closing the iterator (a page rerun) stops them between tokens.
    """
    events: queue.Queue[Event | BaseException] = queue.Queue()
    stop = threading.Event()

    def work(key: K, strategy: Strategy) -> None:
        try:
            reply = runtime.run(strategy, question, stop=stop)
            for piece in reply:
                events.put(Event(key, piece))
            events.put(Event(key, answer=reply.answer()))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, never lost in a thread
            events.put(e)

    threads = [threading.Thread(target=work, args=job, daemon=True, name=f"strategy-{job[0]}") for job in jobs]
    for t in threads:
        t.start()
    remaining = len(threads)
    try:
        while remaining:
            event = events.get()
            if isinstance(event, BaseException):
                raise event
            if event.answer is not None:
                remaining -= 1
            yield event
    finally:
        stop.set()
