"""Choices that outlive a browser tab: DATA_DIR/preferences.json (the chosen knowledge base, Compare's settings).

A refresh starts a new Streamlit session with empty state; these values fill it in again. One file per
DATA_DIR, so on a shared server the last choice made is everyone's next default, as in a desktop app.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.files import atomic_write_text

log = logging.getLogger(__name__)
_lock = threading.Lock()


class Preferences:
    """A small JSON object on disk, read whole and merged on write."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        """The saved values; an unreadable or malformed file counts as empty (it only holds defaults)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            log.warning("Ignoring unreadable preferences at %s: %s", self.path, e)
            return {}
        return data if isinstance(data, dict) else {}

    def update(self, values: Mapping[str, Any]) -> None:
        """Merge `values` in (None removes a key) and write atomically; a failed write is logged, not raised."""
        with _lock:
            data = self.load()
            for key, value in values.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
            try:
                atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False))
            except OSError as e:
                log.warning("Could not save preferences to %s: %s", self.path, e)
