"""The embedded model's answers do not loop to the token limit (llama.cpp's own default would)."""

from __future__ import annotations

from collections import Counter

import pytest

from core.config import Settings
from core.engine import EmbeddedEngine
from core.models import ModelCatalog, embedded_models

pytestmark = pytest.mark.slow

# Two identical sources and "list every source": at llama.cpp's default (no penalty) SmolLM2 lists the
# same line until the limit (92 of 96 tokens, one 4-word run three times).
LOOPING = [
    {
        "role": "user",
        "content": "Sources:\n[1] handbook.pdf, page 2: Core hours are 10:00 to 15:00.\n"
        "[2] handbook.pdf, page 2: Core hours are 10:00 to 15:00.\n\nQuestion: What are the core hours? "
        "List every source.",
    }
]


def longest_repeat(text: str) -> int:
    words = text.lower().split()
    return max(Counter(tuple(words[i : i + 4]) for i in range(len(words) - 3)).values(), default=0)


def test_the_app_answer_stops_before_looping() -> None:
    settings = Settings.from_env()
    catalog = ModelCatalog(settings, EmbeddedEngine(), None)
    model = embedded_models(settings)[0]
    prepared = catalog.prepare(model.id, LOOPING, temperature=0.0, max_tokens=96)
    chunks = list(prepared.chat.stream([(m["role"], m["content"]) for m in LOOPING]))
    text = "".join(str(c.content) for c in chunks)
    used = next(c.usage_metadata for c in reversed(chunks) if c.usage_metadata)["output_tokens"]
    assert longest_repeat(text) < 3, text
    assert used < 90, text  # it ended by itself, well before the limit
