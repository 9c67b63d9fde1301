"""Small helpers for data under DATA_DIR: timestamps and atomic writes."""

from __future__ import annotations

import errno
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from core.errors import DataDirError


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def data_dir_error(path: Path, e: OSError) -> DataDirError:
    """An OS error while writing under DATA_DIR, as a message that says what to do."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return DataDirError(
            f"The disk holding {path} is full ({e.strerror}); nothing was changed. Free some space, or set "
            "DATA_DIR to a folder on another disk, then try again."
        )
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return DataDirError(
            f"{path} cannot be written ({e.strerror}); nothing was changed. Give this user write access to "
            "DATA_DIR, or set DATA_DIR to a writable folder."
        )
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        return DataDirError(f"{path} is not a folder ({e.strerror}); set DATA_DIR to a folder, or remove that file.")
    return DataDirError(f"Could not write {path} ({e}); nothing was changed. Check DATA_DIR and the disk.")


def ensure_writable(data_dir: Path) -> None:
    """Check at start that DATA_DIR exists (or can be made) and takes a file.

    Raises:
        DataDirError: read-only, no permission, not a folder, or a full disk.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=data_dir, prefix=".write-check-")
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise data_dir_error(data_dir, e) from e


def atomic_write_text(path: Path, text: str, *, exclusive: bool = False) -> bool:
    """Write via a temp file and rename, so readers never see half a file.

    Args:
        exclusive: do not replace an existing file (returns False instead).

    Raises:
        DataDirError: the folder cannot be written or the disk is full; the old file is untouched.
    """
    try:
        return _atomic_write_text(path, text, exclusive=exclusive)
    except OSError as e:
        raise data_dir_error(path, e) from e


def _atomic_write_text(path: Path, text: str, *, exclusive: bool) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # atomic and fails if the name is taken
        except FileExistsError:
            return False
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
