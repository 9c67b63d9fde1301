"""Training runs under several sessions: who may stop one, and torch's threads (no model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.config import cpu_threads
from core.errors import TrainingError
from core.finetune import encoding, train_settings, trainer
from core.finetune.datasets import Pair
from core.finetune.pipeline import TrainRequest
from core.finetune.train_settings import TrainSettings
from core.finetune.trainer import Trained
from core.lab.training import TrainingJob

REQUEST = TrainRequest("facts-1", "facts", (Pair("q?", "a."),), Path("base.gguf"), "SmolLM2")


def test_only_the_session_that_started_a_run_stops_it_unless_another_confirms(tmp_path: Path) -> None:
    job = TrainingJob(tmp_path, REQUEST, owner="session-a")  # not started: only its state matters here
    assert job.is_owner("session-a") and not job.is_owner("session-b")
    with pytest.raises(TrainingError, match="started in another session; confirm"):
        job.cancel("session-b")
    assert not job.cancel_flag.is_set()
    job.cancel("session-b", force=True)
    assert job.cancel_flag.is_set()
    owned = TrainingJob(tmp_path, REQUEST, owner="session-a")
    owned.cancel("session-a")
    assert owned.cancel_flag.is_set() and "Stopping" in owned.view().message


def test_torch_threads_are_set_for_the_run_and_given_back(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def fake_train(*args: object, **kwargs: object) -> Trained:
        seen.append(torch.get_num_threads())
        return Trained(model=None, tokenizer=None)

    monkeypatch.setattr(trainer, "_train", fake_train)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # what the server runs with
    try:
        trainer.train(Path("base.gguf"), [Pair("q?", "a.")], [], TrainSettings())
        assert seen == [cpu_threads()]
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_batches_are_padded_on_the_right_with_ignored_labels() -> None:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "a": 1, "b": 2, "c": 3, "d": 4}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<pad>")))
    tokenizer.pad_token, tokenizer.padding_side = "<pad>", "right"
    batch = encoding.collator(tokenizer)(
        [encoding.Encoded([1, 2, 3], [encoding.IGNORE, 2, 3]), encoding.Encoded([4], [4])]
    )
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 2, 3], [4, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_an_epochs_batches_hold_every_example_once_grouped_by_length() -> None:
    import random

    data = [encoding.Encoded([0] * n, [0] * n) for n in [400, 60, 380, 55, 410, 70, 390, 65] * 3]
    batches = encoding.batches(data, 4, random.Random(0))
    assert sorted(id(e) for b in batches for e in b) == sorted(id(e) for e in data)
    for b in batches:  # short replayed questions are not padded to a RAG prompt's length
        lengths = [len(e.input_ids) for e in b]
        assert max(lengths) < 100 or min(lengths) > 300


def test_learning_rate_warms_up_then_decays_to_a_tenth() -> None:
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([weight], lr=1.0)
    schedule = trainer.scheduler_for(optimizer, 20)
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[:3] == [0.0, 0.5, 1.0]  # two warm-up steps (10%), then the peak
    assert all(a >= b for a, b in zip(rates[2:], rates[3:], strict=False))  # then only down
    assert rates[-1] == pytest.approx(0.1, abs=0.01)


def test_precision_autocasts_to_bfloat16_only_where_asked_or_native(monkeypatch: pytest.MonkeyPatch) -> None:
    assert train_settings.autocast_dtype("float32") is None
    assert train_settings.autocast_dtype("bfloat16") is torch.bfloat16
    monkeypatch.setattr(train_settings, "native_bf16", lambda: False)
    assert train_settings.autocast_dtype("auto") is None
    monkeypatch.setattr(train_settings, "native_bf16", lambda: True)
    assert train_settings.autocast_dtype("auto") is torch.bfloat16
    with pytest.raises(TrainingError, match="precision"):
        TrainSettings(precision="float16").validate()
