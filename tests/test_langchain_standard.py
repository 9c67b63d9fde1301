"""LlamaCppChat against LangChain's standard chat-model tests (langchain-tests), for what it supports.

It streams text with usage metadata and honours stop sequences; it has no tool calling,
structured output, JSON mode or multimodal input, so those standard tests are skipped by the
suite itself (the `has_*` / `supports_*` flags below say so).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from core.engine import LlamaCppChat, LoadedModel
from core.models import bundled_gguf

pytestmark = pytest.mark.slow


@cache
def loaded() -> LoadedModel:
    return LoadedModel(bundled_gguf())


@pytest.fixture(scope="module", autouse=True)
def _close_the_model() -> Iterator[None]:
    """Free llama.cpp before the interpreter shuts down (its finalizer fails once modules are gone)."""
    yield
    loaded().close()


class _Params:
    @property
    def chat_model_class(self) -> type[LlamaCppChat]:
        return LlamaCppChat

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"loaded": loaded(), "model_id": "llama.cpp:SmolLM2-135M-Instruct"}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        return super().standard_chat_model_params | {"max_tokens": 24}  # type: ignore[misc]

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True


class TestLlamaCppChatUnit(_Params, ChatModelUnitTests):
    pass


class TestLlamaCppChatIntegration(_Params, ChatModelIntegrationTests):
    pass
