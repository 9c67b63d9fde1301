"""Settings from explicit arguments, then environment variables, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.errors import ConfigError

DEFAULT_MAX_UPLOAD_MB = 50
DEFAULT_MAX_UPLOAD_FILES = 50  # per batch: each file is parsed and kept as text until its group is embedded
# all-MiniLM-L6-v2 reads at most 256 word pieces; English runs about 4-5 characters a
# piece, so 800 characters stays inside the window with room to spare (a test checks it).
# OCR per uploaded file: about 3-20 s a page on 2 cores (bench/parsing.py), so 30 pages fit in 5 minutes.
DEFAULT_OCR_MAX_PAGES = 30
DEFAULT_OCR_MAX_SECONDS = 300
DEFAULT_CHUNK_SIZE = 800
DEFAULT_CHUNK_OVERLAP = 120
DEFAULT_OLLAMA_HOST = "http://localhost:11434"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise ConfigError(f"{name}={raw!r} is not a whole number; set it to e.g. {default}.") from e
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive; set it to e.g. {default}.")
    return value


def _ollama_host(raw: str | None) -> str | None:
    """OLLAMA_HOST as given, for the ollama client to parse itself (`host`, `host:port` or a URL).

    Only `off` is ours: it disables Ollama. Anything else goes to `ollama.Client(host=...)` unchanged,
    so `https://host` means port 443 and `http://proxy/ollama` keeps its path, as the client reads them.
    """
    if raw is None or not raw.strip():
        return DEFAULT_OLLAMA_HOST
    raw = raw.strip()
    return None if raw.lower() == "off" else raw


@dataclass(frozen=True)
class Settings:
    """Where data lives and which backends serve it."""

    data_dir: Path = field(default_factory=lambda: Path("data"))
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    qdrant_path: Path | None = None
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB
    max_upload_files: int = DEFAULT_MAX_UPLOAD_FILES
    ocr_max_pages: int = DEFAULT_OCR_MAX_PAGES
    ocr_max_seconds: int = DEFAULT_OCR_MAX_SECONDS
    chunk_size: int = DEFAULT_CHUNK_SIZE
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP
    ollama_host: str | None = DEFAULT_OLLAMA_HOST

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Build settings: explicit argument > environment variable > default.

        Variables: DATA_DIR, QDRANT_URL, QDRANT_API_KEY, QDRANT_PATH, RAGTUNE_MAX_UPLOAD_MB, RAGTUNE_MAX_UPLOAD_FILES,
        RAGTUNE_OCR_MAX_PAGES, RAGTUNE_OCR_MAX_SECONDS,
        RAGTUNE_CHUNK_SIZE, RAGTUNE_CHUNK_OVERLAP, OLLAMA_HOST (the variable the ollama client
        reads; `off` disables Ollama).
        """
        env = os.environ
        settings = cls(
            data_dir=Path(env.get("DATA_DIR") or "data"),
            qdrant_url=env.get("QDRANT_URL") or None,
            qdrant_api_key=env.get("QDRANT_API_KEY") or None,
            qdrant_path=Path(env["QDRANT_PATH"]) if env.get("QDRANT_PATH") else None,
            max_upload_mb=_env_int("RAGTUNE_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB),
            max_upload_files=_env_int("RAGTUNE_MAX_UPLOAD_FILES", DEFAULT_MAX_UPLOAD_FILES),
            ocr_max_pages=_env_int("RAGTUNE_OCR_MAX_PAGES", DEFAULT_OCR_MAX_PAGES),
            ocr_max_seconds=_env_int("RAGTUNE_OCR_MAX_SECONDS", DEFAULT_OCR_MAX_SECONDS),
            chunk_size=_env_int("RAGTUNE_CHUNK_SIZE", DEFAULT_CHUNK_SIZE),
            chunk_overlap=_env_int("RAGTUNE_CHUNK_OVERLAP", DEFAULT_CHUNK_OVERLAP),
            ollama_host=_ollama_host(env.get("OLLAMA_HOST")),
        )
        settings = replace(settings, **overrides)
        if settings.chunk_overlap >= settings.chunk_size:
            raise ConfigError(
                f"Chunk overlap ({settings.chunk_overlap}) must be smaller than chunk size "
                f"({settings.chunk_size}); lower RAGTUNE_CHUNK_OVERLAP."
            )
        return settings

    @property
    def local_qdrant_path(self) -> Path:
        """Folder for Qdrant local mode (used when no QDRANT_URL is set)."""
        return self.qdrant_path or self.data_dir / "qdrant"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    def describe_qdrant(self) -> str:
        """One line for the sidebar: which Qdrant is in use."""
        if self.qdrant_url:
            return f"Qdrant server at {self.qdrant_url}"
        return f"Qdrant local mode in {self.local_qdrant_path}"
