"""Uploads cut short (a refresh, Stop, a killed process): recorded, then checked and said on the next load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.documents import parse, split
from core.errors import KnowledgeBaseError
from core.ingest import Upload, ingest
from core.store import Store
from core.uploads import FOLDER, recorded, recover, running_here

pytestmark = pytest.mark.slow

OTTERS = b"# Otters\n\nOtters at the Wrenfield sanctuary are fed herring at 09:40 and 16:10.\n"
BUOYS = "\n\n".join(f"Section {i}: the buoy number {i} is painted yellow." * 4 for i in range(200)).encode()


class ScriptStopped(BaseException):
    """As Streamlit's StopException: raised in the script's thread when its page is refreshed or closed."""


def stop_after_first_file(done: int, total: int, message: str, seen: list[str]) -> None:
    seen.append(message)
    if message.startswith("Embedding") and any(m.startswith("Stored") for m in seen):
        raise ScriptStopped  # the first file is committed; the second is being embedded


def test_a_refresh_mid_upload_keeps_the_finished_file_and_names_the_one_not_added(
    store: Store, kb: str, data_dir: Path
) -> None:
    seen: list[str] = []
    with pytest.raises(ScriptStopped), recorded(data_dir, kb, ["otters.md", "buoys.txt", "late.txt"]):
        ingest(
            store,
            kb,
            [Upload("otters.md", OTTERS), Upload("buoys.txt", BUOYS), Upload("late.txt", b"Never added.")],
            progress=lambda d, t, m: stop_after_first_file(d, t, m, seen),
            group_chunks=8,  # each file a group of its own: otters.md is stored before buoys.txt is embedded
        )
    assert len(list((data_dir / FOLDER).glob("*.json"))) == 1  # left for the next load
    assert running_here(data_dir) == []  # ended: nothing to wait for
    [cut] = recover(store, data_dir)
    assert (cut.kb, cut.added, cut.not_added, cut.removed_chunks) == (kb, ("otters.md",), ("buoys.txt", "late.txt"), 0)
    assert [d.filename for d in store.list_documents(kb)] == ["otters.md"]
    assert store.count_chunks(kb) == store.list_documents(kb)[0].chunks  # nothing of buoys.txt stored
    assert recover(store, data_dir) == []  # said once


def test_chunks_a_killed_process_stored_before_committing_are_removed(store: Store, kb: str, data_dir: Path) -> None:
    [otters] = ingest(store, kb, [Upload("otters.md", OTTERS)])
    chunks = split(parse(BUOYS, "buoys.txt"), chunk_size=800, chunk_overlap=100)
    with pytest.raises(KeyboardInterrupt), recorded(data_dir, kb, ["buoys.txt"]):
        store.upsert_chunks(kb, chunks, store.embedder.embeddings.embed_documents([c.text for c in chunks]))
        raise KeyboardInterrupt  # killed before the manifest entry was written
    assert store.count_chunks(kb) == otters.chunks + len(chunks)
    [cut] = recover(store, data_dir)
    assert (cut.added, cut.not_added, cut.removed_chunks) == ((), ("buoys.txt",), len(chunks))
    assert store.count_chunks(kb) == otters.chunks
    assert [d.filename for d in store.list_documents(kb)] == ["otters.md"]


def test_an_upload_still_running_or_ended_by_an_error_is_not_reported(store: Store, kb: str, data_dir: Path) -> None:
    with recorded(data_dir, kb, ["otters.md"]):
        assert recover(store, data_dir, wait_s=0.2) == []  # another tab's upload, under way: left alone
        assert len(list((data_dir / FOLDER).glob("*.json"))) == 1
        assert running_here(data_dir) == [kb]  # the page waits for it, then says what it left
        ingest(store, kb, [Upload("otters.md", OTTERS)])
    with pytest.raises(KnowledgeBaseError), recorded(data_dir, "gone", ["x.txt"]):
        ingest(store, "gone", [Upload("x.txt", b"The page shows this error itself.")])
    assert recover(store, data_dir) == []
    assert not list((data_dir / FOLDER).glob("*.json"))


def test_a_record_from_an_earlier_process_is_checked_even_for_a_deleted_knowledge_base(
    store: Store, data_dir: Path
) -> None:
    folder = data_dir / FOLDER
    folder.mkdir(parents=True)
    record = {"kb": "gone", "files": ["a.pdf"], "started": "2026-01-01T10:00:00+00:00", "pid": -1, "token": "t"}
    (folder / "t.json").write_text(json.dumps(record))
    (folder / "broken.json").write_text("{not json")
    [cut] = recover(store, data_dir)
    assert (cut.kb, cut.not_added, cut.kb_exists) == ("gone", ("a.pdf",), False)
    assert not list(folder.glob("*.json"))
