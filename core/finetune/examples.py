"""Training examples whose prompt is already rendered: a RAG template filled with retrieved chunks.

A `Pair` is trained with the FT prompt (system + question). Retrieval-aware training needs the
prompt the model will see when it is served with retrieval, so a `Rendered` example carries its
own prompt messages; the trainer encodes both kinds alike and counts the loss on the answer only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.files import atomic_write_text
from core.finetune.datasets import Pair


@dataclass(frozen=True)
class Rendered:
    """A question, its answer, and the exact prompt messages (as a RAG strategy renders them) to learn from.

    `golden` says whether the chunk holding the answer is in the prompt (None: not looked for), so a
    run can report how many examples had to answer from memory. `completion` is the same template in
    completion form (`PromptTemplate.render_completion`), what a base model without a chat template is
    served and so trained on.
    """

    question: str
    answer: str
    prompt: tuple[tuple[str, str], ...]  # (role, content), the assistant's answer excluded
    golden: bool | None = None
    completion: str | None = None

    def prompt_messages(self, default_system: str | None = None) -> list[dict[str, str]]:
        """The rendered messages; `default_system` is ignored (the template already placed its own)."""
        return [{"role": role, "content": content} for role, content in self.prompt]

    def completion_messages(self, default_system: str | None = None) -> list[dict[str, str]]:
        """The prompt for a base model: its completion form as one user message, else the rendered messages."""
        return [{"role": "user", "content": self.completion}] if self.completion else self.prompt_messages()

    def messages(self, default_system: str | None = None) -> list[dict[str, str]]:
        return self.prompt_messages() + [{"role": "assistant", "content": self.answer}]

    @classmethod
    def of(cls, question: str, answer: str, messages: Sequence[dict[str, str]], golden: bool | None = None,
           completion: str | None = None) -> Rendered:  # fmt: skip
        return cls(question, answer, tuple((m["role"], m["content"]) for m in messages), golden, completion)


Example = Pair | Rendered


def split_like(examples: Sequence[Rendered], validation: Iterable[Pair]) -> tuple[list[Rendered], list[Rendered]]:
    """Examples on the side their question's pair was split to (`datasets.split` decides for the pairs)."""
    held = {p.question for p in validation}
    return [e for e in examples if e.question not in held], [e for e in examples if e.question in held]


def write_examples(path: Path, examples: Iterable[Example], default_system: str | None = None) -> None:
    """Examples as chat-messages JSONL (the upload format), written atomically: what was trained on, exactly."""
    rows = [json.dumps({"messages": e.messages(default_system)}, ensure_ascii=False) + "\n" for e in examples]
    atomic_write_text(path, "".join(rows))
