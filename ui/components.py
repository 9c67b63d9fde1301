"""Rendering helpers shared by pages. Document text is shown as text, never as HTML."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import streamlit as st

from core.ingest import FileReport
from core.language import NAMES
from core.parsing.base import UNSEARCHED_ROLES, ranges
from core.records import RunRow
from core.store import DocumentRecord, SearchHit
from ui.labels import label_text

STATUS_LABELS = {
    "added": "✅ added",
    "replaced": "🔁 replaced",
    "unchanged": "⏭️ unchanged",
    "refused": "❌ refused",
    "cancelled": "⏹️ cancelled",
    "held": "✋ held: language",
}


NOTE_LABELS = {"contents": "contents", "index": "index", "blank": "blank", "ocr": "read by OCR"}


def wrapping_columns(key: str, min_width: str, *, sized: dict[str, str] | None = None) -> None:
    """Let the columns inside `st.container(key=key)` wrap onto new rows rather than go below `min_width`.

    Streamlit stacks columns only below 640 px; between that and a wide screen they shrink until
    labels are cut ("📦 Loa…") and words break ("engineeri ng"). `sized` maps the key of an element
    inside a column to that column's own minimum (wider for a picker, narrower for a short note).
    """

    def css_key(k: str) -> str:
        return re.sub(r"[^a-zA-Z0-9_-]", "-", k)  # as Streamlit makes a key into a class name

    columns = f".st-key-{css_key(key)} [data-testid='stColumn']"
    rules = [
        f".st-key-{css_key(key)} [data-testid='stHorizontalBlock'] {{ flex-wrap: wrap; }}",
        f"{columns} {{ min-width: min(100%, {min_width}); }}",
    ]
    rules += [
        f"{columns}:has([class*='st-key-{css_key(inner)}']) {{ min-width: min(100%, {width}); }}"
        for inner, width in (sized or {}).items()
    ]
    st.html("<style>\n" + "\n".join(rules) + "\n</style>")


def run_label(r: RunRow, live: set[int]) -> str:
    """A stored run as its picker names it: a run still "running" that no job runs was interrupted."""
    status = "interrupted" if r.status == "running" and r.id not in live else r.status
    return f"#{r.id} {r.name} · {status}"


def show_current_label(key: str, label: str) -> None:
    """Make the keyed picker show `label` for its chosen option; call before drawing it.

    The browser keeps the text it was first sent for the chosen option ("#3 … · running"), whatever a
    later run formats ("· done"); setting the value again sends the new text.
    """
    state, seen = st.session_state, f"{key}.shown_label"
    if state.get(seen) != label and key in state:
        state[key] = state[key]
    state[seen] = label


def md_escape(text: str) -> str:
    """Text shown inside Markdown as typed: no links, images, emphasis or HTML."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~])", r"\\\1", text)


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} MB"


def progress_callback(label: str) -> Callable[[int, int, str], None]:
    """A core progress callback drawn as an st.progress bar."""
    bar = st.progress(0.0, text=label)

    def update(done: int, total: int, message: str) -> None:
        bar.progress(min(done / total, 1.0) if total else 0.0, text=message)

    return update


def ingest_report(reports: Sequence[FileReport]) -> None:
    """Per-file outcome table, then one line that sums it up."""
    st.dataframe(
        [
            {
                "File": r.filename,
                "Result": STATUS_LABELS[r.status],
                "Pages": r.pages,
                "Chunks": r.chunks,
                "Seconds": round(r.seconds, 2),
                "Details": r.message,
            }
            for r in reports
        ],
        hide_index=True,
        width="stretch",
        column_config={"Details": st.column_config.TextColumn("Details", width="large")},
    )
    refused = [r for r in reports if r.status == "refused"]
    held = [r for r in reports if r.status == "held"]
    for r in refused:
        # The table cuts long text; the advice ("Run OCR…", "qpdf --decrypt…") is the part that matters.
        st.text(f"❌ {r.filename}: {r.message}")
    added = sum(r.status in ("added", "replaced") for r in reports)
    if refused:
        st.warning(f"{len(refused)} file(s) refused, {added} added. The knowledge base kept everything it had.")
    elif held:
        st.info(f"{added} file(s) added, {len(held)} held back for their language (see below).")
    elif any(r.status == "cancelled" for r in reports):
        st.warning(f"Cancelled: {added} file(s) added in full; the rest were not added.")
    else:
        st.success(f"{added} file(s) added, {len(reports) - added} unchanged.")


def documents_table(docs: Sequence[DocumentRecord]) -> None:
    st.dataframe(
        [
            {
                "Name": d.filename,
                "Type": d.kind,
                "Pages": d.pages,
                "Chunks": d.chunks,
                "Added": d.added.replace("T", " ").replace("+00:00", " UTC"),
                "Size": human_size(d.size_bytes),
                "Language": NAMES.get(d.language or "", "–"),
                "Pages not searched": ", ".join(
                    f"{NOTE_LABELS[k]} {ranges(v)}" for k, v in d.page_notes.items() if k in UNSEARCHED_ROLES
                ),
                "OCR": ranges(d.page_notes.get("ocr", [])),
            }
            for d in docs
        ],
        hide_index=True,
        width="stretch",
    )


def page_table(doc: DocumentRecord) -> None:
    """A document's pages that are not plain searched text: contents, index and blank pages, and OCR'd ones."""
    if not doc.page_notes:
        return
    rows = [{"Pages": ranges(pages), "What": NOTE_LABELS[kind], "Searched": kind not in UNSEARCHED_ROLES}
            for kind, pages in doc.page_notes.items()]  # fmt: skip
    kinds = ", ".join(NOTE_LABELS[kind] for kind in doc.page_notes)
    with st.expander(f"Pages of {doc.filename}: {doc.pages} in all ({kinds})"):
        st.dataframe(rows, hide_index=True, width="stretch")


def hit_card(
    rank: int,
    hit: SearchHit,
    *,
    show_score: bool = True,
    expanded: bool | None = None,
    highlight: tuple[int, int] | None = None,
) -> None:
    """One chunk: where it comes from, its score, and its text shown verbatim.

    Args:
        highlight: (start, end) of a passage of the text to mark, such as the sentence supporting an answer.
    """
    where = label_text(f"{hit.filename} · page {hit.page}" + (f" · {hit.heading}" if hit.heading else ""), None)
    title = f"#{rank} · {where}" + (f" · score {hit.score:.3f}" if show_score else "")
    with st.expander(title, expanded=rank == 1 if expanded is None else expanded):
        if highlight is None:
            st.text(hit.text)
            return
        start, end = highlight
        before, marked, after = hit.text[:start], hit.text[start:end], hit.text[end:]
        st.markdown(_lines(before) + _lines(marked, ":orange-background[{}]") + _lines(after))


_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'`]+?(?=[.,;:!?)\]]*(?:\s|$))")


def _escape(text: str) -> str:
    """Plain text as Markdown shown as typed; $…$ would be maths."""
    return md_escape(text).replace("$", "\\$")


def _text_with_links(line: str) -> str:
    r"""A line as Markdown: its text escaped, each URL a link that opens (escaped text, the raw address as href).

    Escaped and left to Markdown's own autolinking, `www.debian.org/social_contract` showed as
    `www\.debian\.org/social\_contract` and linked to that, backslashes included.
    """
    out, cursor = [], 0
    for m in _URL.finditer(line):
        url = m.group(0)
        href = url if "://" in url else f"https://{url}"
        out += [_escape(line[cursor : m.start()]), f"[{_escape(url)}](<{href}>)"]
        cursor = m.end()
    return "".join([*out, _escape(line[cursor:])])


def _lines(text: str, wrap: str = "{}") -> str:
    """Text as Markdown that shows it as typed, line breaks included; `wrap` formats each non-empty line."""
    escaped = [_text_with_links(line) for line in text.split("\n")]
    return "  \n".join(wrap.format(line) if line.strip() else "" for line in escaped)


# Streamlit commits a text box's value on blur or Ctrl+Enter only. This script commits it (the same
# Ctrl+Enter a user would press) after a short pause in typing, for boxes inside a keyed container,
# so that checks run as you type. Our own code, no user content.
_LIVE_JS = """
export default function (component) {
  const scope = component.data && component.data.scope;
  window.__ragtuneLive = window.__ragtuneLive || {};
  if (!scope || window.__ragtuneLive[scope]) return;
  window.__ragtuneLive[scope] = true;
  document.body.dataset.commitWhileTyping = "on";  // lets a browser test wait until typing is watched
  let timer;
  document.addEventListener("input", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLTextAreaElement || box instanceof HTMLInputElement)) return;
    if (!box.closest("." + scope)) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      const keys = { key: "Enter", code: "Enter", keyCode: 13, which: 13, bubbles: true, cancelable: true };
      const commit = box instanceof HTMLTextAreaElement ? { ...keys, ctrlKey: true } : keys;
      box.dispatchEvent(new KeyboardEvent("keydown", commit));
    }, 600);
  }, true);
}
"""
_live = None


def commit_while_typing(container_key: str) -> None:
    """Text boxes inside `st.container(key=container_key)` commit after a pause in typing."""
    global _live
    if _live is None:
        _live = st.components.v2.component("ragtune_commit_while_typing", js=_LIVE_JS)
    _live(data={"scope": f"st-key-{container_key}"}, key=f"live.{container_key}")
