"""Documents: knowledge bases, uploads with a per-file report, the document table and a chunk browser."""

from __future__ import annotations

import streamlit as st

from core.documents import SUPPORTED_EXTENSIONS
from core.errors import AppError
from core.ingest import Upload, ingest
from core.samples import SAMPLE_KB_NAME, sample_uploads
from ui import components, resources
from ui.state import init_state

init_state(st.session_state)
st.title("📄 Documents")
st.caption("Upload PDF, Markdown or text files into a knowledge base (a Qdrant collection), then search it.")
if error := st.session_state.pop("documents.error", None):
    st.error(error)

try:
    settings = resources.settings()
    store = resources.store()
    kbs = {kb.name: kb for kb in store.list_kbs()}
except AppError as e:
    st.error(str(e))
    st.stop()


def run_ingest(kb_name: str, uploads: list[Upload], label: str) -> None:
    """Ingest with a progress bar; clicking Stop reruns the page, which rolls back the file in progress."""
    st.button("Stop", key="documents.stop", help="Stops after rolling back the file being added.")
    try:
        reports = ingest(
            store,
            kb_name,
            uploads,
            max_bytes=settings.max_upload_bytes,
            progress=components.progress_callback(label),
        )
    except AppError as e:
        st.error(str(e))
        return
    st.session_state["documents.reports"] = reports
    st.session_state["documents.upload_round"] += 1
    st.rerun()


left, middle, right = st.columns([3, 1, 1], vertical_alignment="bottom")
with middle.popover("➕ New", width="stretch"), st.form("documents.new_kb", border=False):
    new_name = st.text_input("Name", placeholder="handbook", key="documents.new_name")
    size = st.number_input("Chunk size (characters)", 200, 4000, settings.chunk_size, 50, key="documents.chunk_size")
    overlap = st.number_input("Overlap (characters)", 0, 1000, settings.chunk_overlap, 10, key="documents.overlap")
    if st.form_submit_button("Create knowledge base"):
        try:
            store.create_kb(new_name, chunk_size=int(size), chunk_overlap=int(overlap))
        except AppError as e:
            st.error(str(e))
        else:
            st.session_state["documents.kb"] = new_name.strip()
            st.rerun()
load_sample = right.button("📦 Load sample", key="documents.load_sample", width="stretch")
if load_sample:
    try:
        if SAMPLE_KB_NAME not in kbs:
            store.create_kb(SAMPLE_KB_NAME, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    except AppError as e:
        st.error(str(e))
        st.stop()
    st.session_state["documents.kb"] = SAMPLE_KB_NAME
    run_ingest(SAMPLE_KB_NAME, sample_uploads(), "Loading the sample knowledge base…")

if not kbs:
    st.info("No knowledge base yet: create one with **➕ New**, or **📦 Load sample** to try a ready-made one.")
    st.stop()
if st.session_state["documents.kb"] not in kbs:
    st.session_state["documents.kb"] = next(iter(kbs))
kb_name = left.selectbox("Knowledge base", list(kbs), key="documents.kb")
kb = kbs[kb_name]
st.caption(
    f"Embeddings: {kb.embedding_model} ({kb.dimension} dims) · chunks of {kb.chunk_size} characters, "
    f"{kb.chunk_overlap} overlap · created {kb.created[:10]}"
)


def delete_kb(name: str) -> None:
    # A callback runs before the page, when the knowledge-base picker may still be changed.
    try:
        store.delete_kb(name)
    except AppError as e:
        st.session_state["documents.error"] = str(e)
    st.session_state["documents.kb"] = None


with st.expander("⚠️ Delete this knowledge base"):
    confirm = st.text_input(f"Type {kb_name} to confirm", key="documents.confirm_delete_kb")
    st.button(
        "Delete knowledge base",
        disabled=confirm != kb_name,
        on_click=delete_kb,
        args=(kb_name,),
        key="documents.delete_kb",
    )

st.subheader("Add documents")
files = st.file_uploader(
    "PDF, Markdown or text files",
    type=list(SUPPORTED_EXTENSIONS),
    accept_multiple_files=True,
    max_upload_size=settings.max_upload_mb,
    key=f"documents.upload.{st.session_state['documents.upload_round']}",
    help=f"Up to {settings.max_upload_mb} MB a file. Unchanged files are skipped; "
    "a changed file replaces its earlier version.",
)
if files and st.button(f"Add {len(files)} file(s) to {kb_name}", type="primary", key="documents.add"):
    run_ingest(kb_name, [Upload(f.name, f.getvalue()) for f in files], "Adding documents…")
if st.session_state["documents.reports"]:
    components.ingest_report(st.session_state["documents.reports"])

st.subheader("Documents")
docs = store.list_documents(kb_name)
if not docs:
    st.info(f"{kb_name} has no documents yet: add some above.")
    st.stop()
components.documents_table(docs)
by_label = {f"{d.filename} ({d.doc_id[:8]})": d for d in docs}
with st.expander("🗑️ Delete documents"):
    doomed = st.multiselect("Documents to delete", list(by_label), key="documents.delete_pick")
    if st.button("Delete selected", disabled=not doomed, key="documents.delete"):
        for label in doomed:
            store.delete_document(kb_name, by_label[label].doc_id)
        st.session_state["documents.reports"] = []
        st.toast(f"Deleted {len(doomed)} document(s).")
        st.rerun()

st.subheader("Search and browse chunks")
query = st.text_input("Search this knowledge base", placeholder="How long is parental leave?", key="documents.search")
top_k = st.slider("Results", 1, 20, 5, key="documents.top_k")
if query.strip():
    hits = store.search(kb_name, query, k=top_k)
    if not hits:
        st.info("No matching chunks.")
    for rank, hit in enumerate(hits, start=1):
        components.hit_card(rank, hit)
else:
    pick = st.selectbox("Or browse a document", list(by_label), key="documents.browse")
    for hit in store.chunks_of(kb_name, by_label[pick].doc_id):
        components.hit_card(hit.chunk_index + 1, hit, show_score=False)
