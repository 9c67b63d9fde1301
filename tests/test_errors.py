"""The error family: one place, no bare AppError, library errors matched by class, not by name."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any, cast

import httpx
import ollama
import pytest
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException

import core.errors
from core.errors import (
    AppError,
    ModelError,
    ModelUnavailableError,
    ServerRefusedError,
    StoreError,
    StoreUnavailableError,
)
from core.servers.ollama import OllamaServer
from core.store import Store

ROOT = Path(__file__).resolve().parent.parent
CORE_FILES = sorted((ROOT / "core").rglob("*.py"))


def _parsed() -> list[tuple[Path, ast.Module]]:
    return [(f, ast.parse(f.read_text(encoding="utf-8"))) for f in CORE_FILES]


def test_no_bare_app_error_is_raised_in_core() -> None:
    offenders = []
    for f, tree in _parsed():
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name == "AppError":
                    offenders.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_every_error_class_lives_in_core_errors() -> None:
    outside = [
        f"{f.relative_to(ROOT)}:{node.name}"
        for f, tree in _parsed()
        if f.name != "errors.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(isinstance(b, ast.Name) and b.id.endswith(("Error", "Cancelled")) for b in node.bases)
    ]
    assert outside == []
    family = [c for _, c in inspect.getmembers(core.errors, inspect.isclass) if issubclass(c, Exception)]
    assert all(issubclass(c, AppError) and c.__doc__ for c in family)
    assert {"DatasetError", "TrainingError", "AdapterError", "ExportError"} <= {c.__name__ for c in family}


def test_errors_are_never_matched_by_class_name_strings() -> None:
    """`type(e).__name__ in {...}` silently stops matching when a library renames or subclasses."""
    offenders = []
    for f, tree in _parsed():
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Attribute) and s.attr == "__name__" for s in sides):
                    offenders.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


_REQUEST = httpx.Request("POST", "http://ollama.test/api/chat")


@pytest.mark.parametrize(
    ("error", "kind", "fragment"),
    [
        (httpx.ConnectError("refused", request=_REQUEST), ModelUnavailableError, "not reachable at http://h"),
        (ConnectionError("Failed to connect to Ollama"), ModelUnavailableError, "ollama serve"),
        (httpx.ReadTimeout("timed out", request=_REQUEST), ModelUnavailableError, "did not answer"),
        (httpx.ConnectTimeout("timed out", request=_REQUEST), ModelUnavailableError, "did not answer"),
        (httpx.RemoteProtocolError("peer closed", request=_REQUEST), ModelUnavailableError, "dropped the connection"),
        (httpx.ReadError("reset", request=_REQUEST), ModelUnavailableError, "dropped the connection"),
        (ollama.ResponseError("model 'x' not found", 404), ServerRefusedError, "ollama pull x"),
        (ollama.ResponseError("out of memory", 500), ServerRefusedError, "Ollama refused ollama:x: out of memory"),
        (RuntimeError("boom"), ModelError, "failed while answering: boom"),
    ],
)
def test_chat_errors_are_translated_by_class(error: Exception, kind: type[ModelError], fragment: str) -> None:
    translated = OllamaServer("http://h").translate_error(error, "ollama:x")
    assert type(translated) is kind and fragment in str(translated)


class _Embedder:
    name, dimension, max_tokens = "fake", 3, 16


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (httpx.ConnectError("refused"), StoreUnavailableError),
        (httpx.ReadTimeout("timed out"), StoreUnavailableError),
        (httpx.RemoteProtocolError("peer closed"), StoreUnavailableError),
        (ResponseHandlingException(httpx.ConnectError("refused")), StoreUnavailableError),
        (ValueError("bad request"), StoreError),
    ],
)
def test_qdrant_errors_are_translated_by_class(
    error: Exception, kind: type[StoreError], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(QdrantClient(":memory:"), cast(Any, _Embedder()))

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(store.client, "get_collections", fail)
    with pytest.raises(StoreError) as info:
        store.list_kbs()
    assert type(info.value) is kind
