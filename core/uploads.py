"""Uploads in progress, recorded on disk, so that one cut short (a refresh, Stop, a crash) is said, not lost silently.

`ingest` commits each document whole, its manifest entry last: an upload cut short keeps the files it
finished and nothing of the file it was on. A process killed between storing a document's chunks and
committing them leaves chunks that no entry names; search never shows them, and `recover` removes them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from qdrant_client import models

from core.errors import AppError
from core.files import atomic_write_text, now_iso
from core.search import METADATA_KEY
from core.store import Store

log = logging.getLogger(__name__)
FOLDER = "uploads-in-progress"
_running: dict[str, str] = {}  # this process's uploads still under way: token -> knowledge base
_lock = threading.Lock()


@dataclass(frozen=True)
class Interrupted:
    """An upload that did not reach its end, as found on the next load."""

    kb: str
    started: str
    added: tuple[str, ...]  # files committed whole before it stopped
    not_added: tuple[str, ...]  # files of which nothing is searchable
    removed_chunks: int  # chunks of an unfinished document found and deleted
    kb_exists: bool = True


@contextmanager
def recorded(data_dir: Path, kb: str, filenames: Sequence[str]) -> Iterator[None]:
    """Record an upload while it runs; its end, or an error the caller reports (an `Exception`), clears it.

    Anything else that ends it (Streamlit stopping the script when the page is refreshed or Stop is
    pressed, Ctrl-C, a killed process) leaves the record for `recover` on the next load.
    """
    token = uuid.uuid4().hex
    path = data_dir / FOLDER / f"{token}.json"
    entry = {"kb": kb, "files": list(filenames), "started": now_iso(), "pid": os.getpid(), "token": token}
    atomic_write_text(path, json.dumps(entry, ensure_ascii=False))
    with _lock:
        _running[token] = kb
    try:
        yield
    except Exception:
        path.unlink(missing_ok=True)
        raise
    else:
        path.unlink(missing_ok=True)
    finally:
        with _lock:
            _running.pop(token, None)


def recover(store: Store, data_dir: Path, *, wait_s: float = 5.0) -> list[Interrupted]:
    """The uploads recorded but not finished, each checked and cleaned in its knowledge base, then forgotten.

    An upload still running in this process is left alone; one being stopped (its page was just
    refreshed) gets up to `wait_s` to end.
    """
    found = []
    for path in sorted((data_dir / FOLDER).glob("*.json")):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            kb, files, started, token = entry["kb"], list(entry["files"]), entry["started"], entry["token"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("Dropping an unreadable upload record %s: %s", path, e)
            path.unlink(missing_ok=True)
            continue
        if entry.get("pid") == os.getpid() and not _ended(token, wait_s):
            continue
        try:
            found.append(_check(store, kb, files, started))
        except AppError:
            log.exception("Could not check the interrupted upload into %s", kb)
            continue  # the record stays: the next load tries again
        path.unlink(missing_ok=True)
    return found


def running_here(data_dir: Path) -> list[str]:
    """The knowledge bases that uploads recorded by this process still run into (or are being stopped in).

    A refreshed page whose upload takes longer than `recover`'s wait to stop finds it here, and can wait for it.
    """
    with _lock:
        tokens = dict(_running)
    return [kb for token, kb in tokens.items() if (data_dir / FOLDER / f"{token}.json").exists()]


def _ended(token: str, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        with _lock:
            if token not in _running:
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _check(store: Store, kb: str, files: list[str], started: str) -> Interrupted:
    if kb not in {k.name for k in store.list_kbs()}:
        return Interrupted(kb, started, (), tuple(files), 0, kb_exists=False)
    with _lock:
        busy = kb in _running.values()
    removed = 0 if busy else remove_unfinished_chunks(store, kb)  # another upload's chunks are not stray
    new = {d.filename for d in store.list_documents(kb) if d.added >= started}
    added = tuple(f for f in files if _stored_name(f) in new)
    return Interrupted(kb, started, added, tuple(f for f in files if f not in added), removed)


def _stored_name(filename: str) -> str:
    return unicodedata.normalize("NFC", filename).strip()  # as `documents.check_filename` keeps it


def remove_unfinished_chunks(store: Store, kb: str) -> int:
    """Delete the chunks that no manifest entry names (a process killed between storing and committing).

    Never call while an ingest into `kb` runs: its chunks are not committed yet. Returns how many went.
    """
    committed = {r.doc_id for r in store.list_documents(kb)}
    selector = models.PayloadSelectorInclude(include=[f"{METADATA_KEY}.doc_id"])
    stray: dict[str, int] = {}
    offset = None
    while True:
        with store.guard(f"checking the chunks of {kb!r}"):
            points, offset = store.client.scroll(kb, limit=1024, offset=offset, with_payload=selector)
        for p in points:
            doc_id = ((p.payload or {}).get(METADATA_KEY) or {}).get("doc_id")
            if isinstance(doc_id, str) and doc_id not in committed:
                stray[doc_id] = stray.get(doc_id, 0) + 1
        if offset is None:
            break
    for doc_id in stray:
        store.delete_chunks(kb, doc_id)
    return sum(stray.values())
