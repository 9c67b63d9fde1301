"""Fine-tuned adapters under DATA_DIR/adapters/<name>/: adapter.gguf, manifest.json, the data it learned.

An adapter exists (and every model picker lists it) only once its folder is renamed into
place, which happens last: a cancelled or failed run leaves nothing registered.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import AppError
from core.files import atomic_write_text

ADAPTER_FILE = "adapter.gguf"
MANIFEST_FILE = "manifest.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")


class AdapterError(AppError):
    """An adapter name is taken or invalid, or its files are damaged."""


@dataclass(frozen=True)
class Adapter:
    """A registered adapter: where it lives and what its manifest says."""

    name: str
    folder: Path
    manifest: dict[str, Any]

    @property
    def path(self) -> Path:
        return self.folder / ADAPTER_FILE

    @property
    def created(self) -> str:
        return str(self.manifest.get("created", ""))


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise AdapterError(
            f"{name!r} is not a valid model name; use lowercase letters, digits, '-' or '_' (up to 48), "
            "starting with a letter or digit."
        )
    return name


def root(data_dir: Path) -> Path:
    return data_dir / "adapters"


def list_adapters(data_dir: Path) -> list[Adapter]:
    """Registered adapters, oldest first (so the last is the newest)."""
    found = []
    folder = root(data_dir)
    if not folder.is_dir():
        return []
    for sub in folder.iterdir():
        manifest = sub / MANIFEST_FILE
        if sub.name.startswith(".") or not manifest.is_file() or not (sub / ADAPTER_FILE).is_file():
            continue
        try:
            found.append(Adapter(sub.name, sub, json.loads(manifest.read_text(encoding="utf-8"))))
        except (OSError, json.JSONDecodeError):
            continue  # half-written by hand or damaged: not listed, not fatal
    return sorted(found, key=lambda a: (a.created, a.name))


def get_adapter(data_dir: Path, name: str) -> Adapter:
    for adapter in list_adapters(data_dir):
        if adapter.name == name:
            return adapter
    raise AdapterError(f"There is no fine-tuned model {name!r}; it may have been deleted.")


def exists(data_dir: Path, name: str) -> bool:
    return (root(data_dir) / name).exists()


def staging(data_dir: Path, name: str) -> Path:
    """A private folder to build an adapter in, invisible to `list_adapters`."""
    folder = root(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=folder, prefix=f".partial-{name}-"))


def publish(data_dir: Path, stage: Path, name: str, manifest: dict[str, Any]) -> Adapter:
    """Write the manifest and rename the staged folder into place, atomically."""
    text = json.dumps(manifest, indent=2, ensure_ascii=False)
    atomic_write_text(stage / MANIFEST_FILE, text)
    target = root(data_dir) / check_name(name)
    try:
        stage.rename(target)  # fails if the name was taken meanwhile; never merges folders
    except OSError as e:
        raise AdapterError(f"A fine-tuned model named {name!r} already exists; pick another name.") from e
    return Adapter(name, target, json.loads(text))  # as `list_adapters` will read it


def update_manifest(adapter: Adapter, *, drop: tuple[str, ...] = (), **changes: Any) -> Adapter:
    manifest = {k: v for k, v in adapter.manifest.items() if k not in drop} | changes
    atomic_write_text(adapter.folder / MANIFEST_FILE, json.dumps(manifest, indent=2, ensure_ascii=False))
    return Adapter(adapter.name, adapter.folder, manifest)


def delete_adapter(data_dir: Path, name: str) -> None:
    folder = root(data_dir) / check_name(name)
    if folder.is_dir():
        # Rename first, so the picker never sees a folder half deleted.
        trash = folder.with_name(f".deleting-{name}")
        folder.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)


def discard(stage: Path) -> None:
    shutil.rmtree(stage, ignore_errors=True)


_hashes: dict[tuple[Path, int, int], str] = {}
_hash_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    """The file's SHA-256, cached per (path, size, mtime): the base GGUF is hashed once per process."""
    stat = path.stat()
    key = (path.resolve(), stat.st_size, stat.st_mtime_ns)
    with _hash_lock:
        if key not in _hashes:
            digest = hashlib.sha256()
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            _hashes[key] = digest.hexdigest()
        return _hashes[key]
