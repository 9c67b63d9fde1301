"""Documents page pieces: local mode's size notice, and a knowledge base's export and import."""

from __future__ import annotations

import uuid

import streamlit as st

from core import kb_transfer
from core.config import Settings
from core.errors import AppError
from core.store import Store

DOWNLOAD_LIMIT_BYTES = 200 * 1024 * 1024  # larger exports are left on disk, their path shown


def size_notice(store: Store, kb_name: str, settings: Settings) -> None:
    """Before a knowledge base outgrows Qdrant's local mode: what it costs and how to move it."""
    try:
        chunks = sum(d.chunks for d in store.list_documents(kb_name))
    except AppError:
        return
    if notice := kb_transfer.local_mode_notice(chunks, server=bool(settings.qdrant_url)):
        st.warning(notice)


def transfer_panel(store: Store, kb_name: str, settings: Settings) -> None:
    """Export the chosen knowledge base to a file; import one (here, or into a Qdrant server)."""
    folder = settings.data_dir / "exports"
    with st.expander("📦 Export / import a knowledge base (to move it to a Qdrant server without re-embedding)"):
        if st.button(f"Export {kb_name}", key="documents.export"):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{kb_name}.jsonl.gz"
            try:
                with st.spinner(f"Exporting {kb_name}…"):
                    n = kb_transfer.export_kb(store, kb_name, path)
            except AppError as e:
                st.error(str(e))
            else:
                st.success(f"Exported {n:,} chunks to `{path}` ({path.stat().st_size / 1e6:.1f} MB).")
                if path.stat().st_size <= DOWNLOAD_LIMIT_BYTES:
                    st.download_button(
                        "Download it", path.read_bytes(), path.name, "application/gzip", key="documents.download"
                    )
        upload = st.file_uploader("Import an export (.jsonl.gz)", type=["gz"], key="documents.import_file")
        name = st.text_input("Name here (empty: the name it was exported with)", key="documents.import_name")
        if upload is not None and st.button("Import", key="documents.import"):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"import-{uuid.uuid4().hex}.jsonl.gz"  # never the uploaded name as a path
            path.write_bytes(upload.getvalue())
            try:
                with st.spinner("Importing…"):
                    kb = kb_transfer.import_kb(store, path, name=name.strip() or None)
            except AppError as e:
                st.error(str(e))
            else:
                st.success(f"Imported {kb.name} ({kb.embedding_model}, {kb.chunk_size}/{kb.chunk_overlap}).")
            finally:
                path.unlink(missing_ok=True)
