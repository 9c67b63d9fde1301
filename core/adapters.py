"""Fine-tuned adapters under DATA_DIR/adapters/<name>/: adapter.gguf, manifest.json, the data it learned.

An adapter exists (and every model picker lists it) only once its folder is renamed into
place, which happens last: a cancelled or failed run leaves nothing registered.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import AdapterError
from core.files import atomic_write_text

ADAPTER_FILE = "adapter.gguf"
MANIFEST_FILE = "manifest.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
log = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class BaseInfo(_Strict):
    name: str
    file: str
    sha256: str | None = None


class DatasetInfo(_Strict):
    name: str
    hash: str
    pairs: int
    train: int
    validation: int


class Losses(_Strict):
    train: list[tuple[int, float]]
    validation: list[tuple[int, float]]


class ParityCaseInfo(_Strict):
    kind: str
    question: str
    hf_text: str
    llama_text: str
    agree: int
    compared: int


class ParityInfo(_Strict):
    summary: str
    cases: list[ParityCaseInfo]


class OllamaInfo(_Strict):
    host: str
    model: str
    registered: str
    route: str | None = None  # "adapter" or "merged" (absent: registered before the merged route existed)
    merged: str | None = None  # the merged model's type, size and parity, when that route was taken
    completion: bool | None = None  # True: a base without a chat template, sent completion-form text


class ModeInfo(_Strict):
    """How the training data was made (core.finetune.modes): the mode, and the settings it used."""

    name: str  # ft_then_rag, joint, staged or iterative
    kb: str | None = None
    template: str | None = None
    template_version: int | None = None
    top_k: int | None = None
    without_golden: float | None = None  # share of examples rendered without the chunk that holds the answer
    full_sentence: bool | None = None  # the answer learned is the pair's evidence sentence, where it has one
    examples: int | None = None
    golden_retrieved: int | None = None  # examples whose answer chunk retrieval found by itself
    golden_unfound: int | None = None  # examples whose answer no chunk of the knowledge base holds
    source_run: int | None = None  # the evaluation run whose failures it learned (staged, iterative)
    round: int | None = None  # iterative: which round trained it
    correct_before: float | None = None  # on the evaluation it learned from (0-1)


class ReplayInfo(_Strict):
    """The general questions answered by the base and trained on alongside the data (core.finetune.replay)."""

    examples: int  # trained on (an answer cut off at the token limit is left out)
    asked: int
    answered_by: str
    template: str
    prompts: str  # the file they come from


class AdapterManifest(_Strict):
    """An adapter's manifest.json, typed and read-only: strict types, unknown keys refused.

    What a run did not record is None (manifests written before a field existed load with it so); only
    `parse_manifest` makes one, from the file's text, and `as_json` gives back what the file holds.
    """

    name: str
    created: str
    base: BaseInfo
    dataset: DatasetInfo | None = None
    system: str | None = None
    settings: dict[str, Any] | None = None
    device: str | None = None
    tensors: int | None = None
    losses: Losses | None = None
    train_tokens: int | None = None
    train_seconds: float | None = None
    tokens_per_s: float | None = None
    total_seconds: float | None = None
    parity: ParityInfo | None = None
    ollama: OllamaInfo | None = None
    ollama_error: str | None = None
    mode: ModeInfo | None = None  # absent in manifests written before the modes existed
    replay: ReplayInfo | None = None  # absent in manifests written before replay existed

    @property
    def reads_context(self) -> bool:
        """Whether it was trained inside the RAG prompt, a model to serve with retrieval.

        Joint, Staged and Iterative do; FT then RAG, and runs from before the modes existed, trained on plain facts.
        """
        return self.mode is not None and self.mode.name != "ft_then_rag"

    def as_json(self) -> dict[str, Any]:
        """The manifest as its file holds it: only the fields it recorded."""
        return self.model_dump(mode="json", exclude_unset=True)


def parse_manifest(text: str | bytes) -> AdapterManifest:
    """The manifest in `text`, checked field by field.

    Raises:
        AdapterError: not JSON, a wrong type or an unknown key (named field by field).
    """
    try:
        return AdapterManifest.model_validate_json(text)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or 'the file'}: {err['msg']}" for err in e.errors(include_url=False)
        )
        raise AdapterError(
            f"The model's manifest.json is damaged ({problems}); delete the model and train it again."
        ) from e


def _dump(manifest: Mapping[str, Any]) -> str:
    text = json.dumps(manifest, indent=2, ensure_ascii=False)
    parse_manifest(text)  # refuse to write what would not be read back
    return text


@dataclass(frozen=True)
class Adapter:
    """A registered adapter: where it lives and what its manifest says."""

    name: str
    folder: Path
    manifest: AdapterManifest

    @property
    def path(self) -> Path:
        return self.folder / ADAPTER_FILE

    @property
    def created(self) -> str:
        return self.manifest.created


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
            found.append(Adapter(sub.name, sub, parse_manifest(manifest.read_bytes())))
        except (OSError, AdapterError) as e:
            log.warning("Fine-tuned model %s is not listed: %s", sub.name, e)  # edited by hand or damaged
            continue
    return sorted(found, key=lambda a: (a.created, a.name))


def get_adapter(data_dir: Path, name: str) -> Adapter:
    for adapter in list_adapters(data_dir):
        if adapter.name == name:
            return adapter
    raise AdapterError(f"There is no fine-tuned model {name!r}; it may have been deleted.")


def exists(data_dir: Path, name: str) -> bool:
    return (root(data_dir) / name).exists()


def staging(data_dir: Path, name: str) -> Path:
    """A private folder to build an adapter in, invisible to `list_adapters`; named after this process."""
    folder = root(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=folder, prefix=f"{_PARTIAL}{os.getpid()}-{name}-"))


_PARTIAL = ".partial-"
_DELETING = ".deleting-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def clean_leftovers(data_dir: Path) -> list[str]:
    """Remove what a killed process left: staging folders of dead processes, half-finished deletes.

    A run killed (SIGKILL, power loss) during export or parity leaves its `.partial-<pid>-…` folder;
    it was never listed, and this frees its space. A live process's staging folder is left alone.
    Returns the names removed.
    """
    folder = root(data_dir)
    if not folder.is_dir():
        return []
    removed = []
    for sub in folder.iterdir():
        if sub.name.startswith(_PARTIAL):
            pid = sub.name.removeprefix(_PARTIAL).split("-", 1)[0]
            if pid.isdigit() and _alive(int(pid)):
                continue
        elif not sub.name.startswith(_DELETING):
            continue
        shutil.rmtree(sub, ignore_errors=True)
        removed.append(sub.name)
        log.info("Removed %s, left by an interrupted run", sub)
    return removed


def publish(data_dir: Path, stage: Path, name: str, manifest: Mapping[str, Any]) -> Adapter:
    """Write the manifest and rename the staged folder into place, atomically."""
    text = _dump(manifest)
    atomic_write_text(stage / MANIFEST_FILE, text)
    target = root(data_dir) / check_name(name)
    try:
        stage.rename(target)  # fails if the name was taken meanwhile; never merges folders
    except OSError as e:
        raise AdapterError(f"A fine-tuned model named {name!r} already exists; pick another name.") from e
    return Adapter(name, target, parse_manifest(text))  # as `list_adapters` will read it


def update_manifest(adapter: Adapter, *, drop: tuple[str, ...] = (), **changes: Any) -> Adapter:
    manifest = {k: v for k, v in adapter.manifest.as_json().items() if k not in drop} | changes
    text = _dump(manifest)
    atomic_write_text(adapter.folder / MANIFEST_FILE, text)
    return Adapter(adapter.name, adapter.folder, parse_manifest(text))


def delete_adapter(data_dir: Path, name: str) -> None:
    folder = root(data_dir) / check_name(name)
    if folder.is_dir():
        # Rename first, so the picker never sees a folder half deleted.
        # A fresh name (an earlier delete may have been killed midway); rename replaces the empty folder.
        trash = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f"{_DELETING}{name}-"))
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
