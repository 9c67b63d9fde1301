"""Every st.session_state default, in one place; keys are namespaced by page."""

from __future__ import annotations

import copy
from collections.abc import MutableMapping
from typing import Any

DEFAULTS: dict[str, Any] = {
    "documents.kb": None,
    "documents.reports": [],
    "documents.upload_round": 0,
    "documents.search": "",
    "documents.error": None,
    "compare.question": "",
    "compare.ncols": 4,
    "compare.answers": {},
    **{f"compare.col{i}.preset": preset for i, preset in enumerate(("PE", "RAG", "FT", "FT+RAG"))},
    "prompts.name": None,
    "prompts.error": None,
    "prompts.notice": None,
    "finetune.pairs": [],
    "finetune.name": "",
    "finetune.round": 0,
    "finetune.issues": [],
    "finetune.notice": None,
    "finetune.error": None,
}


def init_state(state: MutableMapping[str, Any]) -> None:
    """Fill in missing defaults without touching values the user already set."""
    for key, value in DEFAULTS.items():
        if key not in state:
            state[key] = copy.deepcopy(value)
