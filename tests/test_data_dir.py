"""A DATA_DIR that cannot be written, or a disk that fills up: a clear message, nothing corrupted."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import Any

import pytest

from core import files
from core.errors import DataDirError
from core.finetune import datasets
from core.finetune.datasets import Correction, Pair
from core.template_library import BUILTINS, TemplateLibrary

RAG = next(t for t in BUILTINS if t.name == "RAG with citations")


def test_a_data_dir_that_is_a_file_is_refused_at_start(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("oops")
    with pytest.raises(DataDirError, match="is not a folder.*set DATA_DIR to a folder"):
        files.ensure_writable(not_a_folder)


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        (errno.EROFS, "cannot be written.*set DATA_DIR to a writable folder"),
        (errno.EACCES, "cannot be written.*write access"),
        (errno.ENOSPC, "is full.*Free some space"),
    ],
)
def test_an_unwritable_or_full_data_dir_is_refused_at_start(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, code: int, fragment: str
) -> None:
    """Simulated: the suite runs as root, which read-only permissions do not stop."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)
    with pytest.raises(DataDirError, match=fragment):
        files.ensure_writable(data_dir)


class _FullDisk(io.StringIO):
    """A file on a disk that fills up after the first few bytes."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_during_a_template_save_keeps_every_version(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = TemplateLibrary(data_dir / "templates")
    before = sorted(p.name for p in (data_dir / "templates").rglob("*"))
    real_fdopen = os.fdopen

    def full(fd: int, *args: Any, **kwargs: Any) -> Any:
        os.close(fd)
        return _FullDisk()

    monkeypatch.setattr(files.os, "fdopen", full)
    with pytest.raises(DataDirError, match="is full"):
        library.save(RAG)
    monkeypatch.setattr(files.os, "fdopen", real_fdopen)
    assert sorted(p.name for p in (data_dir / "templates").rglob("*")) == before  # no temp file, no v2
    assert library.get(RAG.name).system == RAG.system


def test_a_full_disk_during_a_correction_leaves_valid_jsonl(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = data_dir / "datasets"
    datasets.add_correction(folder, "corrections", Correction("Founded when?", "In 2011.", "1900", "PE", "m"))
    before = (folder / "corrections.jsonl").read_bytes()
    real_open = Path.open

    def half_then_full(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        f = real_open(self, mode, *args, **kwargs)
        if mode == "ab":
            real_write = f.write

            def write(data: bytes) -> int:
                real_write(data[:7])  # part of the line reached the disk
                f.flush()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            f.write = write  # type: ignore[method-assign]
        return f

    monkeypatch.setattr(Path, "open", half_then_full)
    with pytest.raises(DataDirError, match="is full"):
        datasets.add_correction(folder, "corrections", Correction("Staff?", "214.", "12", "RAG", "m"))
    monkeypatch.setattr(Path, "open", real_open)
    assert (folder / "corrections.jsonl").read_bytes() == before
    assert datasets.load_pairs(folder, "corrections").pairs == [Pair("Founded when?", "In 2011.")]
