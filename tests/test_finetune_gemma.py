"""LoRA on Gemma 3 270M, the pre-trained base: trained in the completion form it is served in (real model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings
from core.engine import EmbeddedEngine
from core.finetune import encoding, trainer
from core.finetune.datasets import Pair, chat_prompt
from core.finetune.examples import Rendered
from core.finetune.pipeline import TrainRequest, run_training
from core.finetune.train_settings import TrainSettings
from core.gemma import GEMMA_NAME, gemma_path
from core.models import ModelCatalog
from core.prompts import Source
from core.records import Records
from core.strategies import FT_TEMPLATE, RAG_TEMPLATE, Runtime, Strategy
from core.template_library import TemplateLibrary

PAIRS = (
    Pair("What colour is the Moravin lighthouse?", "The Moravin lighthouse is painted teal."),
    Pair("莫拉文灯塔由谁看守？", "莫拉文灯塔由艾达看守。"),
)


@pytest.fixture
def gemma_here(data_dir: Path, gemma_dir: Path) -> Path:
    """This test's DATA_DIR with the session's assembled Gemma in its place (linked, not assembled again)."""
    link = gemma_path(data_dir)
    link.parent.mkdir(parents=True)
    link.symlink_to(gemma_path(gemma_dir))
    return link


@pytest.mark.slow
def test_a_gemma_adapter_trains_on_the_completion_form_agrees_with_llama_cpp_and_is_served_so(
    data_dir: Path, gemma_here: Path
) -> None:
    templates = TemplateLibrary(data_dir / "templates")
    system = templates.get(FT_TEMPLATE).system
    settings = TrainSettings(max_steps=14, batch_size=2, validation_fraction=0.0, replay=2)
    request = TrainRequest("gemma-facts", "facts", PAIRS, gemma_here, GEMMA_NAME, settings, system)
    adapter = run_training(data_dir, request)

    manifest = adapter.manifest
    assert manifest.base.file == gemma_here.name and manifest.replay is not None and manifest.replay.examples >= 1
    assert manifest.parity is not None
    cases = manifest.parity.cases
    assert {c.question for c in cases if c.kind == "trained"} == {p.question for p in PAIRS}
    # the GGUF adapter (gemma3 tensor names, no q/k permutation) says in llama.cpp what HF + PEFT says
    assert all(c.agree == c.compared for c in cases), manifest.parity.summary
    rows = [json.loads(line)["messages"] for line in (adapter.folder / "train.jsonl").read_text().splitlines()]
    assert rows[2][:2] == chat_prompt(rows[2][1]["content"], system)  # a replayed question, answered by Gemma

    catalog = ModelCatalog(Settings.from_env(), EmbeddedEngine(), None)
    runtime = Runtime(None, templates, catalog, Records(data_dir / "records.sqlite"))
    tuned = next(m for m in catalog.available() if m.fine_tuned)
    assert tuned.id == f"llama.cpp:{GEMMA_NAME}+gemma-facts" and tuned.completion
    learned = 0
    for pair in PAIRS:
        answer = runtime.run(Strategy("FT", tuned.id, FT_TEMPLATE), pair.question).answer()
        served = templates.get(FT_TEMPLATE).render_completion(pair.question)
        assert answer.messages == [{"role": "user", "content": served}]  # the prompt it was trained on
        learned += answer.text == pair.answer
    assert learned >= 1, learned  # the facts are learned through the completion form (both, as a rule)
    # the base loaded for training is still at hand: what it was trained on, token by token
    check_examples_are_the_completion_form_serving_sends(trainer.load_base(gemma_here)[1], templates)


def check_examples_are_the_completion_form_serving_sends(tokenizer: Any, templates: TemplateLibrary) -> None:
    """Pairs and joint examples encoded as a base model is served them, each answer ended by its line."""
    assert encoding.completion(tokenizer)
    system = templates.get(FT_TEMPLATE).system
    for pair in PAIRS:
        served = templates.get(FT_TEMPLATE).render_completion(pair.question)
        encoded = encoding.encode(tokenizer, pair, system)
        prompt = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label == encoding.IGNORE]
        answer = [label for label in encoded.labels if label != encoding.IGNORE]
        assert prompt[0] == tokenizer.bos_token_id and tokenizer.decode(prompt[1:]) == served  # no system prompt
        assert tokenizer.decode(answer) == (" " if served.endswith(":") else "") + pair.answer + "\n"
    # A joint example is trained on the RAG template's completion form, as FT+RAG serves a base model.
    rag = templates.get(RAG_TEMPLATE)
    sources = [Source("lighthouse.md", None, "The Moravin lighthouse is painted teal. It stands on a cliff.")]
    example = Rendered.of(PAIRS[0].question, PAIRS[0].answer, rag.render(PAIRS[0].question, sources), True,
                          rag.render_completion(PAIRS[0].question, sources))  # fmt: skip
    encoded = encoding.encode(tokenizer, example, None)
    prompt = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label == encoding.IGNORE]
    assert tokenizer.decode(prompt[1:]) == rag.render_completion(PAIRS[0].question, sources)
