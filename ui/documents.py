"""The Documents page's knowledge bases that follow their documents' language: the automatic choice, and held files."""

from __future__ import annotations

import re
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import streamlit as st

from core import language as lang
from core.embeddings import BUNDLED_MODELS
from core.ingest import FileReport, Upload
from core.sparse import ANALYSERS
from core.store import KnowledgeBase, Store
from core.uploads import Interrupted

# The first choice of the model and analyser pickers: fit the documents (`core.language`).
AUTO_MODEL = ""
AUTO_LABEL = "Fit the documents (MiniLM for English; multilingual E5 for Chinese, mixed and other languages)"
AUTO_ANALYSER_LABEL = "Fit the documents (English words; jieba for Chinese)"


def analyser_label(analyser: str) -> str:
    return AUTO_ANALYSER_LABEL if analyser == lang.AUTO else ANALYSERS.get(analyser, analyser)


@dataclass(frozen=True)
class Held:
    """Files an ingest held back because their language does not fit the knowledge base (kept until acted on)."""

    kb: str
    files: tuple[tuple[str, bytes], ...]
    language: str | None

    def uploads(self) -> list[Upload]:
        return [Upload(name, data) for name, data in self.files]


def held_from(kb: str, uploads: Sequence[Upload], reports: Sequence[FileReport]) -> Held | None:
    held = [(u.filename, u.data) for u, r in zip(uploads, reports, strict=True) if r.status == "held"]
    if not held:
        return None
    language = lang.combined(r.language for r in reports if r.status == "held")
    return Held(kb, tuple(held), language)


def suggest_name(filename: str, kbs: Sequence[str]) -> str:
    """A knowledge-base name from a file's name (letters, digits, '-' and '_' only), free among `kbs`."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", PurePosixPath(filename).stem).strip("-_")
    return free_name(kbs, stem if len(stem) >= 3 else "documents")


def free_name(kbs: Sequence[str], base: str) -> str:
    """`base`, or `base-2`, `base-3`… : the first name no knowledge base has (at most 48 characters)."""
    base = base[:44]
    name, n = base, 1
    while name in kbs:
        n += 1
        name = f"{base}-{n}"
    return name


def held_notice(
    state: MutableMapping[str, Any],
    store: Store,
    kbs: dict[str, KnowledgeBase],
    kb: KnowledgeBase,
    add: Callable[..., None],
) -> None:
    """Say which files were held and why, and offer the knowledge base that fits them in one click."""
    held: Held | None = state.get("documents.held")
    if held is None or held.kb != kb.name:
        return
    fit = lang.fit(held.language)
    names = ", ".join(name for name, _ in held.files)
    st.warning(
        f"Not added yet: {names}. {lang.NAMES.get(held.language or '', 'Its language')} text does not fit "
        f"`{kb.name}`, which embeds with {kb.embedding_model} (English only) and analyses "
        f"{ANALYSERS.get(kb.analyser or '', 'no keywords')}: questions in that language would find little. "
        f"A knowledge base with {BUNDLED_MODELS.get(fit.embedding_model, fit.embedding_model)} and "
        f"{ANALYSERS[fit.analyser]} reads it."
    )
    fitting = [k for k in kbs.values() if not lang.mismatch(held.language, k.embedding_model, k.analyser)]
    new_name = free_name(list(kbs), f"{kb.name}-{held.language or 'other'}")
    left, middle, right = st.columns(3)
    if left.button(f"Create {new_name} and add them there", type="primary", key="documents.held.new", width="stretch"):
        store.create_kb(new_name, chunk_size=kb.chunk_size, chunk_overlap=kb.chunk_overlap, language=held.language)
        state["kb"] = new_name
        state.pop("documents.kb", None)
        add(new_name, held.uploads())
    if fitting and middle.button(f"Add them to {fitting[0].name}", key="documents.held.existing", width="stretch"):
        state["kb"] = fitting[0].name
        state.pop("documents.kb", None)
        add(fitting[0].name, held.uploads())
    if right.button(f"Add them to {kb.name} anyway", key="documents.held.anyway", width="stretch"):
        add(kb.name, held.uploads(), hold=False)


def interrupted_notice(cut: Interrupted) -> str:
    """What an upload cut short left: the files added whole, and those of which nothing was kept."""
    when = cut.started[11:16]
    text = (
        f"The upload into `{cut.kb}` started at {when} UTC was interrupted (the page was refreshed, closed or "
        "stopped while it ran)."
    )
    if cut.added:
        text += f" Added whole: {', '.join(cut.added)}."
    if cut.not_added:
        where = f"`{cut.kb}`" if cut.kb_exists else "any knowledge base (it no longer exists)"
        them = "them" if len(cut.not_added) > 1 else "it"
        text += f" Not added: {', '.join(cut.not_added)}; nothing of {them} was stored in {where}: add {them} again."
    if cut.removed_chunks:
        text += f" {cut.removed_chunks} chunks of an unfinished document were found and removed."
    return text
