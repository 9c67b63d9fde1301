"""Documents: knowledge bases, uploads with a per-file report, the document table and a chunk browser."""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from core import language as lang
from core.documents import SUPPORTED_EXTENSIONS, SUPPORTED_TYPES, OcrLimits
from core.embeddings import BUNDLED_MODELS, OLLAMA_PREFIX, tuned_names
from core.errors import AppError
from core.ingest import Upload, ingest
from core.samples import CHINESE, ENGLISH, SAMPLE_KB_NAME, Sample
from core.sparse import ANALYSERS
from core.store import DEFAULT_MODE, RETRIEVAL_MODES
from core.uploads import recorded, recover, running_here
from ui import components, resources, transfer
from ui import documents as ui_docs
from ui.state import index_of, init_state

init_state(st.session_state)
state = st.session_state
st.title("📄 Documents")
st.caption(f"Upload {SUPPORTED_TYPES} files into a knowledge base (a Qdrant collection), then search it.")
if error := st.session_state.pop("documents.error", None):
    st.error(error)
if notice := st.session_state.pop("documents.notice", None):
    st.success(notice)

try:
    settings = resources.settings()
    store = resources.store()
    kbs = {kb.name: kb for kb in store.list_kbs()}
except AppError as e:
    st.error(str(e))
    st.stop()
if cut := recover(store, settings.data_dir):  # uploads a refresh or Stop ended: said until the next upload
    state["documents.interrupted"] = [ui_docs.interrupted_notice(c) for c in cut]
for notice in state["documents.interrupted"]:
    st.warning(notice, icon="⏹️")


@st.fragment(run_every=1.0)
def wait_for_uploads() -> None:
    """An upload still stopping (a long batch) or running in another tab: said, and the page reloads when it ends."""
    if running := running_here(settings.data_dir):
        st.info(
            f"An upload into {', '.join(f'`{kb}`' for kb in sorted(set(running)))} is still running or being "
            "stopped; this page updates when it ends.",
            icon="⏳",
        )
    else:
        st.rerun()


if running_here(settings.data_dir):
    wait_for_uploads()


def run_ingest(kb_name: str, uploads: list[Upload], label: str = "Adding documents…", *, hold: bool = True) -> None:
    """Ingest with a progress bar; clicking Stop reruns the page, which rolls back the file in progress.

    Files whose language does not fit the knowledge base are held back (`hold`), and offered a fitting one.
    """
    st.button("Stop", key="documents.stop", help="Stops between pages, after rolling back the file being added.")
    state["documents.interrupted"] = []
    try:
        with recorded(settings.data_dir, kb_name, [u.filename for u in uploads]):
            reports = ingest(
                store,
                kb_name,
                uploads,
                max_bytes=settings.max_upload_bytes,
                ocr=OcrLimits(settings.ocr_max_pages, settings.ocr_max_seconds),
                progress=components.progress_callback(label),
                hold_mismatched=hold,
            )
    except AppError as e:
        st.error(str(e))
        return
    state["documents.reports"] = reports
    state["documents.held"] = ui_docs.held_from(kb_name, uploads, reports)
    state["documents.upload_round"] += 1
    st.rerun()


def embedding_label(model: str) -> str:
    if model == ui_docs.AUTO_MODEL:
        return ui_docs.AUTO_LABEL
    if model.startswith(OLLAMA_PREFIX):
        return f"{model.removeprefix(OLLAMA_PREFIX)} (Ollama)"
    return BUNDLED_MODELS.get(model, model)


# The picker, New and the samples wrap onto two rows rather than cut the buttons' labels on a narrow window.
components.wrapping_columns("documents-top", "8.5rem", sized={"documents-kb": "15rem"})
left, middle, right = st.container(key="documents-top").columns([3, 1, 1], vertical_alignment="bottom")
# A new key after each creation draws the popover closed again.
new_popover = middle.popover("➕ New", width="stretch", key=f"documents.new.{state['documents.new_round']}")
with new_popover, st.form("documents.new_kb", border=False):
    problem = st.empty()  # an error shows at the top of the form, not below the popover's fold
    new_name = st.text_input("Name", placeholder="handbook", key="documents.new_name")
    size = st.number_input("Chunk size (characters)", 200, 4000, settings.chunk_size, 50, key="documents.chunk_size")
    overlap = st.number_input("Overlap (characters)", 0, 1000, settings.chunk_overlap, 10, key="documents.overlap")
    ollama_models, ollama_error = resources.ollama_embeddings()  # those the Ollama server has pulled
    # The automatic choice first: the first documents' language picks the model (core.language).
    models = [ui_docs.AUTO_MODEL, *BUNDLED_MODELS, *tuned_names(settings.data_dir), *ollama_models]
    model = st.selectbox("Embedding model", models, format_func=embedding_label, key="documents.model")
    ollama_model = st.text_input(
        "…or an Ollama embedding model by name",
        placeholder="bge-m3",
        key="documents.ollama_model",
        help=ollama_error or "Any embedding model of the Ollama server at OLLAMA_HOST (`ollama pull` it first).",
    )
    analysers = [lang.AUTO, *ANALYSERS]
    analyser = st.selectbox("Keyword analyser", analysers, format_func=ui_docs.analyser_label, key="documents.analyser")
    modes = sorted(RETRIEVAL_MODES, key=lambda m: m != DEFAULT_MODE)  # the default first
    mode = st.selectbox("Search", modes, key="documents.mode", help="Dense: meaning; sparse: keywords; hybrid: both.")
    if st.form_submit_button("Create knowledge base"):
        try:
            store.create_kb(
                new_name,
                chunk_size=int(size),
                chunk_overlap=int(overlap),
                embedding_model=OLLAMA_PREFIX + ollama_model.strip() if ollama_model.strip() else model or None,
                analyser=analyser,
                retrieval_mode=mode,
            )
        except AppError as e:
            problem.error(str(e))
        else:
            state["kb"] = new_name.strip()
            state["documents.reports"] = []  # the last upload's report belongs to another knowledge base
            state["documents.held"] = None
            state["documents.new_round"] += 1
            state.pop("documents.kb", None)
            st.rerun()
sample: Sample | None = None
if right.button("📦 Load sample", key="documents.load_sample", width="stretch"):
    sample = ENGLISH
if right.button("📦 中文示例", key="documents.load_sample_zh", width="stretch", help="A Chinese sample (青梧科技)"):
    sample = CHINESE
if sample is not None:
    try:
        if sample.kb_name not in kbs:
            store.create_kb(
                sample.kb_name,
                chunk_size=settings.chunk_size,
                chunk_overlap=settings.chunk_overlap,
                embedding_model=sample.embedding_model,
                analyser=sample.analyser,
            )
    except AppError as e:
        st.error(str(e))
        st.stop()
    state["kb"] = sample.kb_name
    state.pop("documents.kb", None)
    run_ingest(sample.kb_name, sample.uploads(), "Loading the sample knowledge base…")


def upload_files(key: str) -> list[UploadedFile] | None:
    """The file uploader, cleared after each ingest (its key carries the upload round)."""
    return st.file_uploader(
        "PDF, Word, HTML, Markdown, text or page images (scans are read by OCR)",
        type=list(SUPPORTED_EXTENSIONS),
        accept_multiple_files=True,
        max_upload_size=settings.max_upload_mb,
        key=f"{key}.{state['documents.upload_round']}",
        help=f"Up to {settings.max_upload_mb} MB a file. Unchanged files are skipped; "
        "a changed file replaces its earlier version.",
    )


def add_to_new_kb(files: list[UploadedFile], key: str) -> None:
    """Documents chosen first: a new knowledge base whose model and analyser fit their language."""
    name = st.text_input("New knowledge base", ui_docs.suggest_name(files[0].name, list(kbs)), key=f"{key}.name")
    if st.button(f"Create {name} and add {len(files)} file(s)", key=f"{key}.create", type="primary"):
        try:
            store.create_kb(name, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
        except AppError as e:
            st.error(str(e))
            return
        state["kb"] = name
        state.pop("documents.kb", None)
        run_ingest(name, [Upload(f.name, f.getvalue) for f in files], "Adding documents…")


if not kbs:
    st.info(
        "No knowledge base yet: choose files and one that fits their language is made for them, create one "
        "with **➕ New**, or **📦 Load sample** to try a ready-made one."
    )
    first = upload_files("documents.first_upload")
    if first:
        add_to_new_kb(first[: settings.max_upload_files], "documents.first")
    st.stop()
if state["kb"] not in kbs:
    state["kb"] = next(iter(kbs))


def choose_kb() -> None:
    # The choice made here is every page's default (Compare's RAG columns, Fine-tune, Evaluate).
    state["kb"] = state["documents.kb"]
    state["documents.reports"] = []
    state["documents.held"] = None


if state["kb"] != state.get("documents.kb"):
    # Chosen elsewhere (created, loaded, deleted, or on another page): set the picker's value, since a
    # widget keeps what the browser shows when only its default changes.
    state["documents.kb"] = state["kb"]
kb_name = left.selectbox(
    "Knowledge base", list(kbs), index=index_of(list(kbs), state["kb"]), key="documents.kb", on_change=choose_kb
)
state["kb"] = kb_name
kb = kbs[kb_name]
st.caption(
    f"Embeddings: {kb.embedding_model} ({kb.dimension} dims) · chunks of {kb.chunk_size} characters, "
    f"{kb.chunk_overlap} overlap · keywords: {ANALYSERS.get(kb.analyser or '', 'none')} · "
    f"search: {kb.mode_for(None)} · created {kb.created[:10]}"
    + (" · model and keywords fit the first documents" if kb.auto_model or kb.auto_analyser else "")
)
if kb.upgrade_hint:
    st.info(kb.upgrade_hint)


def delete_kb(name: str) -> None:
    # A callback runs before the page, when the knowledge-base picker may still be changed.
    try:
        store.delete_kb(name)
    except AppError as e:
        state["documents.error"] = str(e)
    else:
        state["documents.notice"] = f"Deleted the knowledge base {name} and its documents."
    state["documents.confirm_delete_kb"] = ""  # the panel does not keep the old name typed for the next one
    state["kb"] = None
    state.pop("documents.kb", None)
    state["documents.reports"] = []


with st.expander("⚠️ Delete this knowledge base"):
    confirm = st.text_input(f"Type {kb_name} to confirm", key="documents.confirm_delete_kb")
    st.button(
        "Delete knowledge base",
        disabled=confirm != kb_name,
        on_click=delete_kb,
        args=(kb_name,),
        key="documents.delete_kb",
    )

transfer.size_notice(store, kb_name, settings)
st.subheader("Add documents")
files = upload_files("documents.upload")
if files and len(files) > settings.max_upload_files:
    st.warning(f"{len(files)} files chosen; add at most {settings.max_upload_files} at a time (remove some above).")
elif files and st.button(f"Add {len(files)} file(s) to {kb_name}", type="primary", key="documents.add"):
    run_ingest(kb_name, [Upload(f.name, f.getvalue) for f in files], "Adding documents…")  # read one at a time
if files and len(files) <= settings.max_upload_files:
    with st.expander("…or into a new knowledge base that fits these files"):
        add_to_new_kb(files, "documents.new_for_files")
if state["documents.reports"]:
    components.ingest_report(state["documents.reports"])
ui_docs.held_notice(state, store, kbs, kb, run_ingest)
transfer.transfer_panel(store, kb_name, settings)

st.subheader("Documents")
try:
    docs = store.list_documents(kb_name)
except AppError as e:
    st.error(str(e))
    st.stop()
if not docs:
    st.info(f"{kb_name} has no documents yet: add some above.")
    st.stop()
components.documents_table(docs)
by_label = {f"{d.filename} ({d.doc_id[:8]})": d for d in docs}
with st.expander("🗑️ Delete documents"):
    doomed = st.multiselect("Documents to delete", list(by_label), key="documents.delete_pick")
    if st.button("Delete selected", disabled=not doomed, key="documents.delete"):
        try:
            for label in doomed:
                store.delete_document(kb_name, by_label[label].doc_id)
        except AppError as e:
            st.error(str(e))
        else:
            state["documents.reports"] = []
            st.toast(f"Deleted {len(doomed)} document(s).")
            st.rerun()

st.subheader("Search and browse chunks")
placeholder = (
    "How long is parental leave at full pay?" if kb_name == SAMPLE_KB_NAME else f"A question {kb_name} answers"
)
query = st.text_input("Search this knowledge base", placeholder=placeholder, key="documents.search")
top_k = st.slider("Results", 1, 20, 5, key="documents.top_k")
try:
    if query.strip():
        hits = store.search(kb_name, query, k=top_k)
        if not hits:
            st.info("No matching chunks.")
        for rank, hit in enumerate(hits, start=1):
            components.hit_card(rank, hit)
    else:
        pick = st.selectbox("Or browse a document", list(by_label), key="documents.browse")
        components.page_table(by_label[pick])
        for hit in store.chunks_of(kb_name, by_label[pick].doc_id):
            components.hit_card(hit.chunk_index + 1, hit, show_score=False)
except AppError as e:
    st.error(str(e))
