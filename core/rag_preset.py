"""The RAG preset's settings as the user last chose them (a sweep's "apply the best"), kept in DATA_DIR/presets.json."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import EvaluationError
from core.files import atomic_write_text, now_iso

log = logging.getLogger(__name__)

PRESETS_FILE = "presets.json"


@dataclass(frozen=True)
class RagPreset:
    """What the RAG and FT+RAG presets retrieve and render with."""

    top_k: int
    score_threshold: float | None
    template: str
    note: str = ""  # where the settings came from, e.g. "sweep #12 on brackenridge"
    updated: str = ""

    def check(self) -> None:
        if not isinstance(self.top_k, int) or self.top_k < 1:
            raise EvaluationError(f"Top-k must be a whole number of at least 1, not {self.top_k!r}.")
        if self.score_threshold is not None and not 0.0 <= float(self.score_threshold) <= 1.0:
            raise EvaluationError(f"The score threshold must lie between 0 and 1, not {self.score_threshold!r}.")
        if not isinstance(self.template, str) or not self.template.strip():
            raise EvaluationError("The RAG preset needs a template name.")


def load_rag_preset(data_dir: Path) -> RagPreset | None:
    """The saved settings, or None when there are none (or the file cannot be read: the defaults apply)."""
    path = data_dir / PRESETS_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["rag"]
        threshold = data.get("score_threshold")
        preset = RagPreset(
            top_k=int(data["top_k"]),
            score_threshold=None if threshold is None else float(threshold),
            template=str(data["template"]),
            note=str(data.get("note", "")),
            updated=str(data.get("updated", "")),
        )
        preset.check()
    except (OSError, ValueError, KeyError, TypeError, EvaluationError) as e:
        log.warning("Ignoring %s, the built-in RAG preset applies: %s", path, e)
        return None
    return preset


def save_rag_preset(data_dir: Path, preset: RagPreset) -> RagPreset:
    """Write the settings (atomically); returns them as saved, with the time.

    Raises:
        EvaluationError: a setting is out of range; nothing is written.
        DataDirError: DATA_DIR cannot be written.
    """
    preset.check()
    saved = RagPreset(preset.top_k, preset.score_threshold, preset.template, preset.note, now_iso())
    atomic_write_text(data_dir / PRESETS_FILE, json.dumps({"rag": asdict(saved)}, ensure_ascii=False, indent=1))
    return saved


def reset_rag_preset(data_dir: Path) -> None:
    """Forget the saved settings: the built-in RAG preset applies again."""
    (data_dir / PRESETS_FILE).unlink(missing_ok=True)
