"""Replay: general questions answered by the base itself, trained on in every run to limit forgetting."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.config import Settings
from core.engine import EmbeddedEngine
from core.errors import TrainingError
from core.evaluation.questions import control_set
from core.finetune import replay
from core.finetune.datasets import Pair
from core.finetune.encoding import Encoded, epoch_slices
from core.finetune.pipeline import TrainRequest, run_training
from core.finetune.train_settings import TrainSettings
from core.models import ModelCatalog, bundled_gguf
from core.records import Records
from core.strategies import FT_TEMPLATE, Runtime, Strategy
from core.template_library import TemplateLibrary

STOP = {"what", "which", "who", "how", "is", "are", "the", "a", "an", "of", "in", "on", "do", "does", "there", "to"}


def words(question: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", question.lower())) - STOP


def test_no_replay_prompt_is_a_control_question_a_rewording_of_one_or_names_its_answer() -> None:
    control = control_set().questions
    for prompt in replay.prompts():
        for q in control:
            mine, theirs = words(prompt), words(q.question)
            assert not (mine <= theirs or theirs <= mine), (prompt, q.question)
            assert len(mine & theirs) / len(mine | theirs) < 0.75, (prompt, q.question)
            if not q.answer.isdigit():  # the sums' numbers are no clue
                assert not words(q.answer) <= mine, (prompt, q.answer)


def test_replay_prompts_are_a_varied_set_of_their_own() -> None:
    prompts = replay.prompts()
    assert 60 <= len(prompts) <= 100 and len(set(prompts)) == len(prompts)
    kinds = {p.split()[0] for p in prompts}
    assert {"What", "How", "Who", "Why", "Name"} <= kinds  # facts, counts, people, reasons, lists


@pytest.mark.parametrize("n", [1, 10, 40, 80])
def test_a_smaller_count_is_spread_over_the_whole_file(n: int) -> None:
    chosen = replay.chosen(n)
    assert len(chosen) == len(set(chosen)) == n and chosen[0] == replay.prompts()[0]
    if n > 1:  # reaches the how-tos at the end, not only the capitals at the start
        assert replay.prompts().index(chosen[-1]) >= len(replay.prompts()) - len(replay.prompts()) // n - 1


@pytest.mark.parametrize("n", [-1, 10_000])
def test_a_count_out_of_range_is_refused(n: int) -> None:
    with pytest.raises(TrainingError, match="general examples"):
        replay.chosen(n)


def test_negative_replay_is_a_settings_error() -> None:
    with pytest.raises(TrainingError, match="general examples"):
        TrainSettings(replay=-1).validate()


@pytest.mark.slow
def test_the_base_answers_replay_questions_as_the_ft_strategy_serves_it(data_dir: Path, settings: Settings) -> None:
    templates = TemplateLibrary(data_dir / "templates")
    system = templates.get(FT_TEMPLATE).system
    questions = replay.chosen(3)
    cache = replay.cache_file(data_dir, bundled_gguf())
    answers = replay.base_answers(bundled_gguf(), questions, system, cache)
    runtime = Runtime(None, templates, ModelCatalog(settings, EmbeddedEngine(), None), Records(data_dir / "r.sqlite"))
    base = next(m.id for m in runtime.models.available() if m.backend == "llama.cpp" and not m.fine_tuned)
    for q in questions:
        served = runtime.run(Strategy("FT", base, FT_TEMPLATE, max_tokens=64), q).answer()
        assert answers[q] == served.text.strip()
    assert json.loads(cache.read_text())[system] == answers  # kept by system prompt: the next run asks nothing


def test_answers_in_the_cache_are_not_asked_again(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = data_dir / "replay" / "base.json"
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({"sys": {"What is a noun?": "A word that names a thing.", "Name three fruits.": ""}}))

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the base model was loaded")

    monkeypatch.setattr("core.engine.LoadedModel", no_model)
    out = replay.base_answers(Path("base.gguf"), ["What is a noun?", "Name three fruits."], "sys", cache)
    assert out == {"What is a noun?": "A word that names a thing."}  # a cut-off answer stays left out


@pytest.mark.slow
def test_every_run_trains_on_the_bases_answers_to_general_questions_with_the_plain_prompt(data_dir: Path) -> None:
    system = TemplateLibrary(data_dir / "templates").get(FT_TEMPLATE).system
    pairs = (Pair("What colour is the Moravin lighthouse?", "The Moravin lighthouse is painted teal."),)
    settings = TrainSettings(max_steps=2, batch_size=2, validation_fraction=0.0, replay=4)
    adapter = run_training(data_dir, TrainRequest("facts-replay", "facts", pairs, bundled_gguf(), "SmolLM2", settings,
                                                  system))  # fmt: skip
    rows = [json.loads(line)["messages"] for line in (adapter.folder / "train.jsonl").read_text().splitlines()]
    answers = replay.base_answers(bundled_gguf(), replay.chosen(4), system, replay.cache_file(data_dir, bundled_gguf()))
    assert rows[0][-1]["content"] == pairs[0].answer
    assert rows[1:] == [
        [{"role": "system", "content": system}, {"role": "user", "content": q}, {"role": "assistant", "content": a}]
        for q, a in answers.items()
    ]
    assert not {q for q in answers} & {q.question for q in control_set().questions}
    manifest = adapter.manifest.as_json()
    assert manifest["replay"]["examples"] == len(answers) == len(rows) - 1 and manifest["settings"]["replay"] == 4
    assert manifest["dataset"]["train"] == 1  # the run's own pairs; the general ones are counted apart
    assert all(c["question"] != rows[1][1]["content"] for c in manifest["parity"]["cases"] if c["kind"] == "trained")


@pytest.mark.parametrize(("epochs", "passes"), [(6, 1), (6, 2), (6, 6), (6, 9), (3, 1), (1, 1)])
def test_replayed_examples_are_spread_over_the_epochs(epochs: int, passes: int) -> None:
    replayed = [Encoded([i], [i]) for i in range(40)]
    slices = epoch_slices(replayed, epochs, passes)
    assert len(slices) == epochs
    seen = [e.input_ids[0] for part in slices for e in part]
    times = min(passes, epochs)  # never more often than there are epochs
    assert sorted(seen) == sorted(list(range(40)) * times)
    for part in slices:
        ids = [e.input_ids[0] for e in part]
        assert len(ids) == len(set(ids))  # an example at most once an epoch
        assert abs(len(part) - 40 * times / epochs) <= 1  # even slices: forgetting is held off all run long


def test_a_replay_pass_count_below_one_is_a_settings_error() -> None:
    with pytest.raises(TrainingError, match="replayed at least once"):
        TrainSettings(replay_passes=0).validate()
