"""A knowledge base exported from one local store and imported into another: same documents, same search."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

import pytest

from core.config import Settings
from core.embeddings import EmbeddingModel
from core.errors import KnowledgeBaseError
from core.kb_transfer import export_kb, import_kb
from core.store import Store

QUESTIONS = ("How many days of annual leave do employees get?", "What is the warranty period?")


def test_export_then_import_into_another_local_store_searches_alike_without_embedding_again(
    sample_kb: str, store: Store, counting: EmbeddingModel, tmp_path: Path
) -> None:
    path = tmp_path / "sample.jsonl.gz"
    written = export_kb(store, sample_kb, path)
    documents = store.list_documents(sample_kb)
    assert written == sum(d.chunks for d in documents) > 0
    embedded_before = counting.embeddings.documents_embedded  # type: ignore[attr-defined]
    source = store.get_kb(sample_kb)

    with Store.open(Settings.from_env(qdrant_path=tmp_path / "elsewhere"), counting) as other:
        kb = import_kb(other, path)
        assert counting.embeddings.documents_embedded == embedded_before  # type: ignore[attr-defined]
        assert replace(kb, created="") == replace(source, created="")
        assert sorted(other.list_documents(sample_kb), key=lambda d: d.doc_id) == sorted(
            documents, key=lambda d: d.doc_id
        )
        for question in QUESTIONS:
            for mode in ("dense", "hybrid"):
                mine = store.search(sample_kb, question, k=4, mode=mode)
                theirs = other.search(sample_kb, question, k=4, mode=mode)
                assert [(h.doc_id, h.chunk_index, h.text) for h in theirs] == [
                    (h.doc_id, h.chunk_index, h.text) for h in mine
                ]
                assert [h.score for h in theirs] == pytest.approx([h.score for h in mine], abs=1e-6)

        with pytest.raises(KnowledgeBaseError, match="already exists"):
            import_kb(other, path)
        renamed = import_kb(other, path, name="sample-copy")
        assert other.count_chunks("sample-copy") == written and renamed.name == "sample-copy"


def test_a_damaged_export_imports_nothing_and_says_so(sample_kb: str, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "sample.jsonl.gz"
    export_kb(store, sample_kb, path)
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    path.write_bytes(gzip.compress(("\n".join(lines[:3]) + "\n{not json\n").encode()))
    with pytest.raises(KnowledgeBaseError, match="damaged"):
        import_kb(store, path, name="broken")
    assert "broken" not in [kb.name for kb in store.list_kbs()]
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(KnowledgeBaseError, match="not a knowledge base export"):
        import_kb(store, tmp_path / "plain.txt")


@pytest.mark.parametrize(
    ("chunks", "server", "said"), [(14_999, False, False), (15_000, False, True), (90_000, True, False)]
)
def test_local_mode_says_what_a_large_knowledge_base_costs_before_it_gets_there(
    chunks: int, server: bool, said: bool
) -> None:
    from core.kb_transfer import local_mode_notice

    notice = local_mode_notice(chunks, server=server)
    assert (notice is not None) == said
    if notice:
        assert f"holds {chunks:,} chunks" in notice and "20,000" in notice and "QDRANT_URL" in notice


@pytest.mark.slow
def test_the_documents_page_exports_a_knowledge_base_and_imports_it_under_another_name(
    sample_kb: str, data_dir: Path
) -> None:
    from tests.helpers import open_app

    at = open_app("app_pages/documents.py", timeout=180)
    at.button(key="documents.export").click().run()
    path = data_dir / "exports" / f"{sample_kb}.jsonl.gz"
    assert path.is_file() and f"to `{path}`" in at.success[0].value
    at.file_uploader(key="documents.import_file").set_value([(path.name, path.read_bytes(), "application/gzip")])
    at.text_input(key="documents.import_name").input("moved").run()
    at.button(key="documents.import").click().run()
    assert not at.exception
    assert any(s.value.startswith("Imported moved (") for s in at.success), [s.value for s in at.success]
    assert [p.name for p in (data_dir / "exports").iterdir()] == [path.name]  # the upload's copy is gone
