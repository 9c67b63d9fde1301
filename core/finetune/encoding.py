"""Training examples as tokens: the prompt exactly as serving builds it, the answer the loss counts, and batches.

Each example is the base model's own chat template applied to its prompt (as llama.cpp formats it when
serving), or for a pre-trained base without one the completion form serving sends it, then the answer and
the token that ends it; prompt tokens are labelled `IGNORE`, so the loss
counts the answer alone. Batches hold examples of similar length, padded on the right.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.finetune.examples import Example
from core.prompts import completion_answer, completion_from_messages

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]


def completion(tokenizer: Any) -> bool:
    """Whether the model is a pre-trained base without a chat template, asked in completion form."""
    return not getattr(tokenizer, "chat_template", None)


def prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Prompt tokens as serving builds them: the chat template with the assistant's turn opened.

    A base model without one gets the completion form after its BOS token (llama.cpp's plain completion adds it).
    """
    if completion(tokenizer):
        bos = [] if tokenizer.bos_token_id is None else [int(tokenizer.bos_token_id)]
        text = completion_from_messages(messages)
        return bos + list(tokenizer(text, add_special_tokens=False)["input_ids"])
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def pad_id(tokenizer: Any) -> int:
    return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)


def encode(tokenizer: Any, example: Example, system: str | None) -> Encoded:
    """The prompt's tokens, then the answer's and the end of turn; the loss counts only the latter.

    The prompt and the answer are tokenized apart, as llama.cpp sees them: the prompt is
    tokenized, and the answer is what the model generates after it.
    """
    answer = example.answer
    if completion(tokenizer):  # " Paris." after "Answer:", ended by the line's end where serving stops reading
        messages = example.completion_messages(system)
        answer = completion_answer(completion_from_messages(messages), answer)
    else:
        messages = example.prompt_messages(system)
    prompt = prompt_ids(tokenizer, messages)
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [end_of_turn(tokenizer)]
    return Encoded(prompt + answer_ids, [IGNORE] * len(prompt) + answer_ids)


def end_of_turn(tokenizer: Any) -> int:
    """The token that ends an answer: <|im_end|> for ChatML models, else EOS.

    A base model in completion form ends it with a line's end: serving's answer is the first line it writes.
    """
    if completion(tokenizer):
        return int(tokenizer("\n", add_special_tokens=False)["input_ids"][-1])
    token = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return int(token if isinstance(token, int) and token != tokenizer.unk_token_id else tokenizer.eos_token_id)


def collator(tokenizer: Any) -> Callable[[Sequence[Encoded]], dict[str, Any]]:
    """Batches padded by DataCollatorForSeq2Seq: on the right, labels with IGNORE, with an attention mask."""
    from transformers import DataCollatorForSeq2Seq

    pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE, return_tensors="pt")

    def collate(batch: Sequence[Encoded]) -> dict[str, Any]:
        return dict(pad([{"input_ids": e.input_ids, "labels": e.labels} for e in batch]))

    return collate


GROUP = 8  # batches per group sorted by length


def batches(data: Sequence[Encoded], size: int, rng: random.Random) -> list[list[Encoded]]:
    """An epoch's batches, shuffled, each of examples of similar length (as `group_by_length` does).

    Short replayed questions batched with 400-token RAG prompts would be padded to their length:
    sorting each group of `GROUP` batches by length first cost a joint run with replay about a
    third of the time it took otherwise.
    """
    order = list(data)
    rng.shuffle(order)
    out: list[list[Encoded]] = []
    for start in range(0, len(order), size * GROUP):
        group = sorted(order[start : start + size * GROUP], key=lambda e: len(e.input_ids))
        out += [group[i : i + size] for i in range(0, len(group), size)]
    rng.shuffle(out)
    return out


def epoch_slices(replayed: Sequence[Encoded], epochs: int, passes: int) -> list[list[Encoded]]:
    """The replayed examples each epoch adds: `passes` copies of them cut into `epochs` even slices.

    With as many passes as epochs every epoch replays all of them (each one `epochs` times); with one
    pass each is seen once, a different slice each epoch, so the base's answers are kept all along
    the run at a fraction of the tokens.
    """
    epochs = max(1, epochs)
    sequence = list(replayed) * min(max(1, passes), epochs)
    return [sequence[len(sequence) * e // epochs : len(sequence) * (e + 1) // epochs] for e in range(epochs)]
