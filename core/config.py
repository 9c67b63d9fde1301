"""Settings from explicit arguments, then environment variables, then defaults."""

from __future__ import annotations

import json
import os
import re
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
# The server OPENAI_BASE_URL names; its models are listed as `openai:<model>`.
DEFAULT_OPENAI_SERVER = "openai"
SERVERS_FILE = "servers.json"  # in DATA_DIR, unless RAGTUNE_SERVERS names another file
# A server's name starts its models' ids (`<name>:<model>`): these prefixes are taken.
_RESERVED_NAMES = {"llama.cpp", "ollama", "tuned"}
_SERVER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


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


def cpu_threads() -> int:
    """Threads for llama.cpp and training: RAGTUNE_THREADS, else every CPU this process may run on.

    Set it lower to leave cores to other work: llama.cpp's threads wait for each other by spinning, so two
    processes that each take every core slow each other down far more than half (the test suite's workers).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return _env_int("RAGTUNE_THREADS", max(1, cpus))


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
class OpenAIServer:
    """An OpenAI-compatible chat server (vLLM, llama.cpp's server, LM Studio, LocalAI)."""

    name: str
    base_url: str  # ends in /v1, as the OpenAI client wants it
    api_key: str | None = None

    def __repr__(self) -> str:  # never print a key in a log or a traceback
        key = "***" if self.api_key else None
        return f"OpenAIServer(name={self.name!r}, base_url={self.base_url!r}, api_key={key})"


def openai_base_url(raw: str) -> str:
    """The URL as the OpenAI client takes it: a bare `http://host:port` gets `/v1`, any other path is kept."""
    url = raw.strip().rstrip("/")
    if not re.match(r"^https?://", url):
        raise ConfigError(f"{raw!r} is not an http(s) URL; give the server's address, e.g. http://localhost:8000/v1.")
    if "/" not in url.split("://", 1)[1]:
        url += "/v1"
    return url


def _server_from_file(entry: Any, source: Path) -> OpenAIServer:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry.get("base_url"):
        raise ConfigError(f"{source}: each entry of `openai_servers` needs a `name` and a `base_url`.")
    name = entry["name"].strip().lower()
    if not _SERVER_NAME.match(name) or name in _RESERVED_NAMES:
        raise ConfigError(
            f"{source}: server name {entry['name']!r} must be lowercase letters, digits, - or _ (at most 32), "
            f"and not one of {sorted(_RESERVED_NAMES)}: it starts the ids of its models."
        )
    key = entry.get("api_key") or (os.environ.get(entry["api_key_env"]) if entry.get("api_key_env") else None)
    return OpenAIServer(name, openai_base_url(str(entry["base_url"])), key or None)


def _openai_servers(data_dir: Path) -> tuple[OpenAIServer, ...]:
    """OPENAI_BASE_URL (with OPENAI_API_KEY) as the server `openai`, then the named servers of the settings file.

    `OPENAI_BASE_URL=off` disables them all. The file (`DATA_DIR/servers.json`, or RAGTUNE_SERVERS) holds
    `{"openai_servers": [{"name": "vllm", "base_url": "http://gpu:8000/v1", "api_key_env": "VLLM_API_KEY"}]}`.
    """
    env = os.environ
    raw = (env.get("OPENAI_BASE_URL") or "").strip()
    if raw.lower() == "off":
        return ()
    servers = []
    if raw:
        servers.append(OpenAIServer(DEFAULT_OPENAI_SERVER, openai_base_url(raw), env.get("OPENAI_API_KEY") or None))
    path = Path(env["RAGTUNE_SERVERS"]) if env.get("RAGTUNE_SERVERS") else data_dir / SERVERS_FILE
    if path.is_file():
        try:
            entries = json.loads(path.read_text(encoding="utf-8")).get("openai_servers", [])
        except (ValueError, AttributeError) as e:
            raise ConfigError(f"{path} is not a JSON object with an `openai_servers` list ({e}); fix it.") from e
        for entry in entries if isinstance(entries, list) else [None]:
            server = _server_from_file(entry, path)
            if any(s.name == server.name for s in servers):
                raise ConfigError(f"{path}: two servers are named {server.name!r}; give each its own name.")
            servers.append(server)
    elif env.get("RAGTUNE_SERVERS"):
        raise ConfigError(f"RAGTUNE_SERVERS={path} does not exist; point it at the servers file or unset it.")
    return tuple(servers)


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
    openai_servers: tuple[OpenAIServer, ...] = ()

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Build settings: explicit argument > environment variable > default.

        Variables: DATA_DIR, QDRANT_URL, QDRANT_API_KEY, QDRANT_PATH, RAGTUNE_MAX_UPLOAD_MB, RAGTUNE_MAX_UPLOAD_FILES,
        RAGTUNE_OCR_MAX_PAGES, RAGTUNE_OCR_MAX_SECONDS,
        RAGTUNE_CHUNK_SIZE, RAGTUNE_CHUNK_OVERLAP, OLLAMA_HOST (the variable the ollama client
        reads; `off` disables Ollama), OPENAI_BASE_URL and OPENAI_API_KEY (the variables the openai
        client reads; `off` disables OpenAI-compatible servers), RAGTUNE_SERVERS (named servers' file).
        """
        env = os.environ
        data_dir = Path(overrides.get("data_dir") or env.get("DATA_DIR") or "data")
        settings = cls(
            data_dir=data_dir,
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
            openai_servers=() if "openai_servers" in overrides else _openai_servers(data_dir),
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
