"""The embedded model's lock under several sessions, and the bound on loaded models (real SmolLM2)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from core.config import Settings
from core.engine import STREAM_INTERVAL_S, EmbeddedEngine, LlamaCppChat, LoadedModel
from core.errors import ModelError
from core.models import ModelInfo, bundled_gguf, embedded_models

pytestmark = pytest.mark.slow
QUESTION = [("user", "Count from one to fifty in words.")]


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    return EmbeddedEngine()


@pytest.fixture(scope="module")
def base() -> ModelInfo:
    return embedded_models(Settings.from_env(data_dir=Path("/nonexistent"), ollama_host=None))[0]


def chat(loaded: LoadedModel, max_tokens: int = 200) -> LlamaCppChat:
    return LlamaCppChat(loaded=loaded, model_id="test", max_tokens=max_tokens)


def in_thread(target: object) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_a_stream_closed_midway_frees_the_model_at_once(engine: EmbeddedEngine, base: ModelInfo) -> None:
    loaded = engine.get(base)
    stream = chat(loaded).stream(QUESTION)
    assert any(chunk.content for chunk in stream)  # stops at the first token
    stream.close()
    assert loaded.lock.acquire(blocking=False), "the closed stream still holds the model"
    loaded.lock.release()


def test_a_stream_hands_out_the_first_piece_alone_then_gathers_the_pieces_between_reads(
    engine: EmbeddedEngine, base: ModelInfo
) -> None:
    """Waking the reader for every token took a core from llama.cpp's threads (issue 21's decode ratio)."""
    loaded = engine.get(base)
    stream = chat(loaded, max_tokens=64).stream(QUESTION)
    first = str(next(c.content for c in stream if c.content))
    started = time.perf_counter()
    pieces = [first, *(str(c.content) for c in stream if c.content)]
    elapsed = time.perf_counter() - started
    whole = str(chat(loaded, max_tokens=64).invoke(QUESTION).content)
    tokens = loaded.llama.tokenize(whole.encode(), add_bos=False, special=True)
    assert "".join(pieces) == whole and len(tokens) >= 16
    assert len(loaded.llama.tokenize(first.encode(), add_bos=False, special=True)) == 1  # out at once
    # then a read every STREAM_INTERVAL_S at most, each with the tokens generated since (several, at full speed)
    assert len(pieces) - 1 <= elapsed / STREAM_INTERVAL_S + 1, (len(pieces), len(tokens), elapsed)


def test_an_abandoned_stream_does_not_keep_the_model_from_others(engine: EmbeddedEngine, base: ModelInfo) -> None:
    """A browser tab closed mid-answer: its stream is neither read nor closed again."""
    loaded = engine.get(base)
    abandoned = chat(loaded, max_tokens=24).stream(QUESTION)
    assert any(chunk.content for chunk in abandoned)
    answers: list[str] = []
    other = in_thread(lambda: answers.append(str(chat(loaded, max_tokens=8).invoke([("user", "Hi")]).content)))
    other.join(timeout=120)
    assert not other.is_alive() and answers, "the next caller waited on a stream nobody reads"
    abandoned.close()


def test_count_tokens_waits_for_a_generation_in_progress(engine: EmbeddedEngine, base: ModelInfo) -> None:
    loaded = engine.get(base)
    counts: list[int] = []
    with loaded.lock:  # a generation is running
        counter = in_thread(lambda: counts.append(loaded.count_tokens("Hello there")))
        counter.join(timeout=0.5)
        assert counter.is_alive() and not counts  # it waits instead of tokenizing beside the generation
    counter.join(timeout=60)
    assert counts and counts[0] > 0


def test_unload_waits_for_the_model_without_blocking_the_engine(engine: EmbeddedEngine, base: ModelInfo) -> None:
    assert base.path is not None
    adapter = Path("/tmp/ragtune-test-adapter.gguf")
    busy = LoadedModel(base.path)
    engine._models[(base.path, adapter, 0)] = busy  # a fine-tuned model, answering someone
    with busy.lock:
        unloading = in_thread(lambda: engine.unload(adapter))
        unloading.join(timeout=0.5)
        assert unloading.is_alive()  # waits for the answer to finish
        got: list[LoadedModel] = []
        other = in_thread(lambda: got.append(engine.get(base)))
        other.join(timeout=60)
        assert got, "the engine lock was held while unload waited for a busy model"
    unloading.join(timeout=60)
    assert busy.closed and busy not in engine.loaded()


def test_loaded_models_are_bounded_least_recently_used_first(data_dir: Path) -> None:
    models = data_dir / "models"
    models.mkdir(parents=True)
    for n in range(3):
        (models / f"copy-{n}.gguf").symlink_to(bundled_gguf())
    # The bundled one and three copies: four distinct models (Gemma, assembled on first use, left out).
    infos = [m for m in embedded_models(Settings.from_env()) if not m.completion]
    engine = EmbeddedEngine(max_loaded=2)
    first = engine.get(infos[0])
    engine.get(infos[1])
    assert engine.get(infos[0]) is first  # used again: now the most recent
    engine.get(infos[2])  # evicts infos[1]
    engine.get(infos[3])  # evicts infos[0]
    assert [m.path for m in engine.loaded()] == [infos[2].path, infos[3].path]
    assert first.closed
    with pytest.raises(ModelError, match="unloaded to free memory"):
        chat(first).invoke([("user", "Hi")])
    assert engine.get(infos[0]) is not first  # loaded anew on demand


def test_every_generation_runs_on_one_llama_thread_whoever_asks(engine: EmbeddedEngine, base: ModelInfo) -> None:
    """llama.cpp's OpenMP teams belong to the calling thread: calls from several threads slow each other down."""
    loaded = engine.get(base)
    callers: list[int] = []
    real = loaded.llama.create_chat_completion

    def spy(*args: object, **kwargs: object) -> object:
        callers.append(threading.get_ident())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    loaded.llama.create_chat_completion = spy  # type: ignore[method-assign]
    try:
        asked_from = [in_thread(lambda: chat(loaded, max_tokens=4).invoke([("user", "Hi")])) for _ in range(3)]
        for thread in asked_from:
            thread.join(timeout=120)
        chat(loaded, max_tokens=4).invoke([("user", "Hello")])
    finally:
        del loaded.llama.create_chat_completion
    assert len(callers) == 4 and len(set(callers)) == 1
    assert callers[0] not in {t.ident for t in asked_from} | {threading.get_ident()}


def test_a_retired_llama_thread_finishes_its_queue_ends_and_the_next_call_gets_a_new_one() -> None:
    """Training retires the thread: its idle OpenMP team would slow torch on every other thread."""
    import time

    from core.engine import llama_thread, retire_llama_thread

    old = llama_thread()
    ran: list[tuple[str, int]] = []
    old.submit(time.sleep, 0.2)
    queued = old.submit(lambda: ran.append(("queued", threading.get_ident())))
    old_thread = old.call(threading.current_thread)
    retire_llama_thread()  # returns once what was queued has run
    assert queued.done() and ran == [("queued", old_thread.ident)]
    assert not old_thread.is_alive() and old_thread not in threading.enumerate()  # the thread (and its team) is gone
    new = llama_thread()
    # A thread object, not its ident: the system may give the new thread the ended one's id.
    assert new is not old and new.call(threading.current_thread) is not old_thread
    assert old.submit(threading.current_thread).result() is new.call(
        threading.current_thread
    )  # a late caller is redirected
