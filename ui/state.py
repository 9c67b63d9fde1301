"""Every st.session_state default, in one place; keys are namespaced by page.

Some choices are *sticky*: they survive a switch to another page (Streamlit drops the state of
widgets a page run did not draw) and a browser refresh (a new session), through a shadow copy in
session state and `core.preferences` on disk. A sticky widget gets its remembered value as its own
default (`remembered`), never through session state: a widget the browser draws afresh reports its
default, and a default of "" or the slider's minimum would then overwrite what was remembered.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

DEFAULTS: dict[str, Any] = {
    "kb": None,  # the knowledge base chosen on Documents: every page's default
    "documents.reports": [],
    "documents.upload_round": 0,
    "documents.new_round": 0,
    "documents.search": "",
    "documents.error": None,
    "documents.held": None,  # ui.documents.Held: files whose language did not fit, until acted on
    "documents.interrupted": [],  # what uploads cut short (a refresh, Stop) left, said until the next upload
    "compare.answers": {},
    "compare.partial": {},  # the answers being written, kept if the run is stopped
    "prompts.name": None,
    "prompts.error": None,
    "prompts.notice": None,
    "finetune.pairs": [],
    "finetune.name": "",
    "finetune.round": 0,
    "finetune.issues": [],
    "finetune.notice": None,
    "finetune.notice_source": None,  # the dataset source whose load wrote the notice
    "finetune.error": None,
    "evaluate.set": "sample",
    "evaluate.ncols": 4,  # PE, RAG, FT, FT+RAG: the FT columns say what they need until a model exists
    "evaluate.run_id": None,
    "evaluate.imported": None,
    "evaluate.upload_round": 0,
    "evaluate.notice": None,
    "evaluate.error": None,
    "evaluate.freshness": None,
    "retriever.result": None,  # (knowledge base, question set, core.embedding_tuner.TuneResult) of the last training
}

SHADOW = "_sticky"
_STICKY = re.compile(
    r"kb|compare\.question|compare\.ncols|(compare|evaluate)\.col\d\.preset"
    r"|(compare|evaluate)\.col\d\.[^.]+\."
    r"(model|template|retrieval|retrieval_mode|top_k|threshold|temperature|max_tokens)"
    r"|evaluate\.(source|sample|saved)"
)


# Sticky values that belong to no widget. "kb" is the one knowledge base every page and Compare's
# columns use: no column keeps a copy of its own that a refresh could bring back.
PLAIN_STICKY = ("kb",)


def is_sticky(key: str) -> bool:
    return _STICKY.fullmatch(key) is not None


def init_state(state: MutableMapping[str, Any], saved: Callable[[], Mapping[str, Any]] | None = None) -> None:
    """Fill in missing values: sticky ones first, then the defaults; values already set stay.

    Sticky values come from this session's shadow, or in a new session from `saved()`.
    """
    if SHADOW not in state:
        state[SHADOW] = {k: v for k, v in (saved() if saved else {}).items() if is_sticky(k)}
    for key in PLAIN_STICKY:  # widgets' sticky values go to the widgets themselves (`remembered`)
        if key not in state and key in state[SHADOW]:
            state[key] = copy.deepcopy(state[SHADOW][key])
    for key, value in DEFAULTS.items():
        if key not in state:
            state[key] = copy.deepcopy(value)


def remember(state: MutableMapping[str, Any], save: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Copy the sticky values of this run into the shadow; `save` gets only what changed."""
    shadow: dict[str, Any] = state.setdefault(SHADOW, {})
    changed = {k: v for k, v in list(state.items()) if is_sticky(k) and shadow.get(k) != v}
    if changed:
        shadow.update(copy.deepcopy(changed))
        if save:
            save(changed)


def forget(
    state: MutableMapping[str, Any], keys: list[str], save: Callable[[dict[str, Any]], None] | None = None
) -> None:
    """Drop sticky values so their widgets start from the defaults again."""
    for key in keys:
        state.pop(key, None)
        state.get(SHADOW, {}).pop(key, None)
    if save and keys:
        save(dict.fromkeys(keys))


def remembered(state: Mapping[Any, Any], key: str, default: Any, options: list[Any] | None = None) -> Any:
    """The value a sticky widget was left at (this run's, else the shadow's), or `default`.

    A value no longer among `options` (a deleted model or knowledge base) gives `default`.
    """
    value = state[key] if key in state else state.get(SHADOW, {}).get(key, default)
    return value if options is None or value in options else default


def index_of(options: list[Any], value: Any) -> int:
    return options.index(value) if value in options else 0


def follow_rag_preset(
    state: MutableMapping[str, Any],
    top_k: int,
    threshold: float | None,
    template: str,
    save: Callable[[dict[str, Any]], None] | None = None,
) -> list[str]:
    """Set the RAG and FT+RAG columns a user already has (Compare's, remembered; Evaluate's) to a new preset.

    Columns keep what they were left at, so without this an applied sweep would reach only columns
    made afresh. Call before the columns' widgets are drawn. Returns the keys it set.
    """
    shadow: dict[str, Any] = state.setdefault(SHADOW, {})
    values = {"top_k": top_k, "threshold": threshold or 0.0, "template": template}
    updates = {
        key: value
        for page in ("compare", "evaluate")
        for i in range(8)
        for kind in ("RAG", "FT+RAG")
        for field, value in values.items()
        if (key := f"{page}.col{i}.{kind}.{field}") in state or key in shadow
    }
    for key, value in updates.items():
        state[key] = value
        if is_sticky(key):
            shadow[key] = value
    if save and (sticky := {k: v for k, v in updates.items() if is_sticky(k)}):
        save(sticky)
    return list(updates)
