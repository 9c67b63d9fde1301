"""The Fine-tune page's loss chart and model card wording, as pure functions."""

from __future__ import annotations

from core.adapters import ParityInfo, ReplayInfo
from ui.finetune import loss_frame, overfitting_note, when
from ui.finetune_models import parity_note, replayed_note


def test_validation_points_are_their_own_series_not_gaps_in_a_joined_table() -> None:
    train = [[1, 3.9], [2, 3.1], [3, 2.0], [4, 1.2]]
    validation = [[2, 3.7], [4, 3.9]]
    frame = loss_frame(train, validation)
    assert frame[frame.series == "validation"][["step", "loss"]].values.tolist() == [[2, 3.7], [4, 3.9]]
    assert len(frame[frame.series == "train"]) == 4
    assert not frame.isna().any().any()  # nothing for the line to break on
    assert frame["step"].dtype.kind == "i"  # whole steps on the axis, not 1.000000


def test_rising_validation_loss_is_said_in_words() -> None:
    train = [[1, 3.9], [2, 2.0], [3, 0.5], [4, 0.02]]
    note = overfitting_note(train, [[1, 3.68], [2, 3.9], [4, 4.17]])
    assert note is not None
    assert "rose from 3.68 (step 1) to 4.17 (step 4)" in note
    assert "training loss fell from 3.90 to 0.26" in note  # steps 3-4 against step 1
    assert "fewer epochs" in note


def test_one_lucky_batch_is_not_read_as_the_training_loss() -> None:
    # Per-step losses of small batches jump; a 0.02 before the best check said nothing about the trend.
    train = [[1, 1.2], [2, 0.02], [3, 1.6], [4, 0.5], [5, 0.7], [6, 0.4]]
    note = overfitting_note(train, [[2, 1.84], [4, 1.86], [6, 2.09]])
    assert note is not None and "training loss fell from 0.61 to 0.55" in note
    rising = [[1, 0.5], [2, 0.4], [3, 0.9], [4, 0.8]]
    assert overfitting_note(rising, [[2, 1.8], [4, 2.1]]) is None  # training no better either: not memorising


def test_falling_or_flat_validation_loss_says_nothing() -> None:
    train = [[1, 3.9], [2, 2.0], [3, 1.5]]
    assert overfitting_note(train, [[1, 3.7], [3, 2.9]]) is None
    assert overfitting_note(train, [[1, 3.0], [3, 3.01]]) is None  # noise, not a trend
    assert overfitting_note(train, [[3, 2.9]]) is None  # one point is no trend


def test_model_card_time_reads_as_a_date_not_iso() -> None:
    shown = when("2026-11-24T14:05:09+00:00")
    assert "2026" in shown and "T" not in shown and "+00:00" not in shown
    assert when("") == "at an unknown time"


def case(agree: int, compared: int = 24) -> dict[str, object]:
    return {"kind": "trained", "question": "q", "llama_text": "a", "hf_text": "a", "agree": agree, "compared": compared}


def parity(summary: str, cases: list[dict[str, object]]) -> ParityInfo:
    return ParityInfo.model_validate({"summary": summary, "cases": cases})


def replayed(examples: int, asked: int) -> ReplayInfo:
    return ReplayInfo(examples=examples, asked=asked, answered_by="base", template="plain", prompts="replay.jsonl")


def test_the_parity_line_says_what_to_conclude() -> None:
    summary = "2/5 prompts identical; 62/72 leading tokens agree between HF + PEFT and llama.cpp + GGUF adapter"
    late = parity_note(parity(summary, [case(24), case(24), case(9), case(4), case(1, 1)]))
    assert late.startswith("✅ Parity: fine.") and "drifts later" in late and late.endswith(f"({summary}).")
    early = parity_note(parity(summary, [case(24), case(2), case(0)]))
    assert early.startswith("⚠️ Parity: 2 of 3 prompts differ within their first 4 tokens")
    assert parity_note(parity("3/3", [case(5, 5)] * 3)).startswith("✅ Parity: llama.cpp with the")
    assert parity_note(None) == "Parity: not checked"


def test_fewer_replayed_examples_than_asked_say_why() -> None:
    note = replayed_note(replayed(74, 80))
    assert note is not None and note.startswith("Replayed 74 general examples answered by the base")
    assert "80 were asked for: the base's other 6 answers ran past 64 tokens and were left out" in note
    assert replayed_note(replayed(80, 80)) == "Replayed 80 general examples answered by the base (limits forgetting)"
    assert replayed_note(None) is None
