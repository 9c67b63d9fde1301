"""Strategies with the real embedded SmolLM2 (llama.cpp), the real MiniLM and Qdrant local mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from core.config import Settings
from core.embeddings import EmbeddingModel
from core.engine import EmbeddedEngine, LoadedModel
from core.ingest import ingest
from core.models import BUNDLED_NAME, ModelCatalog
from core.records import Records
from core.samples import sample_uploads
from core.store import Store
from core.strategies import Answer, Runtime, Strategy, presets, run_many
from core.template_library import TemplateLibrary

pytestmark = pytest.mark.slow
MODEL = f"llama.cpp:{BUNDLED_NAME}"


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    return EmbeddedEngine()


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory, minilm: EmbeddingModel) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("sample")
    store = Store.open(Settings.from_env(data_dir=root, ollama_host=None), minilm)
    store.create_kb("brackenridge", chunk_size=800, chunk_overlap=120)
    ingest(store, "brackenridge", sample_uploads())
    yield store
    store.close()


@pytest.fixture
def runtime(sample_store: Store, engine: EmbeddedEngine, tmp_path: Path) -> Runtime:
    settings = Settings.from_env(data_dir=tmp_path, ollama_host=None)
    catalog = ModelCatalog(settings, engine, None)
    return Runtime(sample_store, TemplateLibrary(tmp_path / "templates"), catalog, Records(tmp_path / "records.sqlite"))


def answer_of(runtime: Runtime, strategy: Strategy, question: str) -> tuple[list[str], Answer]:
    reply = runtime.run(strategy, question)
    pieces = list(reply)
    return pieces, reply.answer()


def test_rag_answers_with_the_right_source_retrieved(runtime: Runtime) -> None:
    rag = presets(runtime.models.available(), "brackenridge")["RAG"].strategy
    deltas, answer = answer_of(runtime, rag, "How long is parental leave at full pay?")
    assert answer.error is None
    assert (answer.sources[0].filename, answer.sources[0].page) == ("employee_handbook.pdf", 5)
    assert "20 weeks of parental leave" in answer.prompt
    assert "20 weeks" in answer.text
    assert answer.prompt_tokens and answer.prompt_tokens > 100
    assert answer.completion_tokens and answer.completion_tokens >= len(deltas) // 2
    assert "Text:\n" in answer.prompt and "[1]" not in answer.prompt
    [row] = runtime.records.answers()
    assert (row.strategy, row.answer, row.detail["sources"][0]["page"]) == ("RAG", answer.text, 5)


def test_every_answer_reads_its_whole_prompt_even_right_after_the_same_one(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # llama.cpp would re-read only the last token of a prompt it has just read, computed differently enough to
    # flip a greedy answer: an answer must not depend on what the model was asked before it.
    rag = presets(runtime.models.available(), "brackenridge")["RAG"].strategy
    _, first = answer_of(runtime, rag, "How long is parental leave at full pay?")
    from llama_cpp import Llama

    cached_before: list[int] = []
    generate = Llama.create_chat_completion

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        cached_before.append(self.n_tokens)
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(Llama, "create_chat_completion", spy)
    _, again = answer_of(runtime, rag, "How long is parental leave at full pay?")
    assert cached_before == [0]  # nothing of the previous prompt kept: the whole prompt was read afresh
    assert again.text == first.text and again.prompt == first.prompt


def test_pe_uses_no_retrieval_and_sends_its_few_shot_turns(runtime: Runtime) -> None:
    pe = presets(runtime.models.available(), "brackenridge")["PE"].strategy
    _, answer = answer_of(runtime, pe, "How long is parental leave at full pay?")
    assert answer.error is None and answer.text
    assert answer.sources == []
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\nParis." in answer.prompt
    assert "20 weeks" not in answer.prompt


def test_streaming_yields_text_before_the_end(runtime: Runtime) -> None:
    reply = runtime.run(Strategy("PE", MODEL, "Plain question", max_tokens=48), "Describe the sea in two sentences.")
    stream = iter(reply)
    first = next(stream)
    assert isinstance(first, str) and first
    rest = list(stream)
    assert len(rest) >= 3 and all(rest)
    answer = reply.answer()
    assert answer.ttft_s is not None and 0 < answer.ttft_s < answer.total_s
    assert answer.text.startswith(first)


def test_columns_on_the_embedded_model_take_turns_and_all_finish(runtime: Runtime) -> None:
    jobs = [(i, Strategy(f"PE{i}", MODEL, "Plain question", max_tokens=24)) for i in range(3)]
    events = list(run_many(runtime, jobs, "Name a colour of the sea."))
    answers = {e.key: e.answer for e in events if e.answer is not None}
    assert sorted(answers) == [0, 1, 2]
    assert all(a.error is None and a.text for a in answers.values())
    # Greedy decoding on one model: the same question gives the same text in every column.
    assert len({a.text for a in answers.values()}) == 1
    # One lock: a column's tokens are never interleaved with another's.
    order = [e.key for e in events if e.answer is None]
    runs = [k for n, k in enumerate(order) if n == 0 or order[n - 1] != k]
    assert sorted(runs) == [0, 1, 2]


def test_prompt_over_the_context_is_refused_before_generation(runtime: Runtime) -> None:
    _, answer = answer_of(runtime, Strategy("PE", MODEL, "Plain question"), "harbour " * 5000)
    assert answer.error is not None and "context" in answer.error and "Lower top-k" in answer.error
    assert answer.text == ""


def test_retrieval_on_with_a_template_without_context_is_refused(runtime: Runtime) -> None:
    _, answer = answer_of(runtime, Strategy("x", MODEL, "Plain question", retrieval=True, kb="brackenridge"), "Hi")
    assert answer.error is not None and "has no {context}" in answer.error


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
        [{"role": "user", "content": "No system prompt here"}],
        [
            {"role": "system", "content": "Answer from the sources."},
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Sources:\n[1] a.pdf, page 2:\nText.\n\nQuestion: Q2"},
        ],
    ],
    ids=["system", "no-system", "few-shot"],
)
def test_chat_template_parity(engine: EmbeddedEngine, runtime: Runtime, messages: list[dict[str, str]]) -> None:
    """The prompt llama.cpp formats equals the GGUF's own chat template, rendered independently."""
    loaded: LoadedModel = engine.get(runtime.models.info(MODEL))
    template = loaded.llama.metadata["tokenizer.chat_template"]
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    expected = env.from_string(template).render(
        messages=messages, add_generation_prompt=True, bos_token="<|im_start|>", eos_token="<|im_end|>"
    )
    assert loaded.format_prompt(messages) == expected

    seen: list[str] = []
    real = loaded.llama.create_completion

    def spy(*args: object, **kwargs: object) -> object:
        tokens = kwargs.get("prompt")  # the chat handler hands over token ids
        assert isinstance(tokens, list)
        seen.append(loaded.llama.detokenize(tokens, special=True).decode("utf-8"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    loaded.llama.create_completion = spy  # type: ignore[method-assign]
    try:
        with loaded.lock:
            loaded.llama.create_chat_completion(messages=messages, max_tokens=1)  # type: ignore[arg-type]
    finally:
        loaded.llama.create_completion = real  # type: ignore[method-assign]
    assert seen == [expected]
    if messages[0]["role"] != "system":
        assert "You are a helpful AI assistant named SmolLM" in expected  # the template's own default


def test_time_waiting_for_the_model_is_not_counted_as_latency(runtime: Runtime) -> None:
    jobs = [(i, Strategy(f"PE{i}", MODEL, "Plain question", max_tokens=32)) for i in range(2)]
    answers = [e.answer for e in run_many(runtime, jobs, "Name a fish.") if e.answer is not None]
    first, second = answers  # in the order they finished
    # The second waited for the whole of the first's generation, the first for nothing but its start.
    # (How long either took is for bench/generate.py, not for a test on a busy machine.)
    assert second.queued_s > first.queued_s
    assert second.queued_s >= 0.5 * (first.total_s or 0)  # it waited out the first's generation, not a lock blip
    assert second.completion_tokens and first.completion_tokens
    # Its time to first token and total are counted from when it got the model, not from when it asked.
    assert second.ttft_s is not None and second.ttft_s <= second.total_s


def test_ft_takes_the_newest_plain_model_and_ft_rag_the_newest_that_reads_context() -> None:
    """After a Joint run, FT stays on the model trained on plain facts (a Joint model answers few without retrieval)."""
    from core.models import ModelInfo

    base = ModelInfo("llama.cpp:base", "base", "llama.cpp")

    def tuned(name: str, reads_context: bool) -> ModelInfo:
        return ModelInfo(f"llama.cpp:base+{name}", name, "llama.cpp", adapter=Path(name), reads_context=reads_context)

    def chosen(*models: ModelInfo) -> tuple[str, str]:
        p = presets([base, *models], "kb")
        return p["FT"].strategy.model, p["FT+RAG"].strategy.model

    plain, joint, newer_plain = tuned("facts-1", False), tuned("joint-1", True), tuned("facts-2", False)
    assert chosen(plain, joint) == (plain.id, joint.id)
    assert chosen(plain, joint, newer_plain) == (newer_plain.id, joint.id)
    assert chosen(joint) == (joint.id, joint.id)  # none of the other kind: the newest of any
    assert chosen(plain) == (plain.id, plain.id)
    assert chosen() == ("llama.cpp:base", "llama.cpp:base")
