"""core.text's one sentence splitter, and the rooms that use it agreeing on where a sentence ends."""

from __future__ import annotations

import pytest

from core.evaluation import metrics
from core.evaluation.support import supporting_sentences
from core.excerpts import excerpt
from core.excerpts import sentences as prompt_sentences
from core.finetune import generate
from core.text import sentence_spans, sentences

# A closing quote after the full stop, an abbreviation before a lower-case word, a decimal, a Chinese sentence.
CHUNK = (
    'The inlet valve is stamped "HX4-V." The warranty on the HX4 pump lasts two years, e.g. for the seals '
    "and the motor. Firmware 3.5 added the frost guard in 2025. 保修期为两年。泵每六个月校准一次。"
)
SENTENCES = [
    'The inlet valve is stamped "HX4-V."',
    "The warranty on the HX4 pump lasts two years, e.g. for the seals and the motor.",
    "Firmware 3.5 added the frost guard in 2025.",
    "保修期为两年。",
    "泵每六个月校准一次。",
]


def test_every_room_ends_the_sentences_of_a_chunk_at_the_same_places() -> None:
    assert sentences(CHUNK) == SENTENCES
    assert prompt_sentences(CHUNK) == SENTENCES  # the prompt's excerpt
    assert metrics.sentences(CHUNK) == SENTENCES  # the answer's claims
    assert generate.sentences(CHUNK) == SENTENCES  # the generated questions' evidence


def test_the_prompts_excerpt_and_the_supported_by_highlight_agree_on_a_sentence_end() -> None:
    """Before, the excerpt cut "…two years, e.g." and the highlight ran on past the quoted "HX4-V.\""""
    question = "How long is the warranty on the HX4 pump?"
    shown = excerpt(CHUNK, question)
    [support] = supporting_sentences("The warranty on the HX4 pump lasts two years.", question, [CHUNK], None)
    highlighted = CHUNK[support.start : support.end]
    assert highlighted == SENTENCES[1]
    assert shown.startswith(highlighted)  # the excerpt's best sentence is the highlighted one, whole
    assert shown == f"{SENTENCES[1]} {SENTENCES[2]}"  # and the sentence after it


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("See the manual, i.e. the printed one. Then sign.", ["See the manual, i.e. the printed one.", "Then sign."]),
        ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
        ("Version 3.8 (released May.) Next steps follow.", ["Version 3.8 (released May.)", "Next steps follow."]),
        ("第一句。 第二句！", ["第一句。", "第二句！"]),
    ],
)  # fmt: skip
def test_a_sentence_ends_at_a_stop_before_a_capital_and_a_closing_quote_stays_with_it(
    text: str, expected: list[str]
) -> None:
    assert [text[s:e] for s, e in sentence_spans(text)] == expected
