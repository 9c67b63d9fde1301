"""Prompts: edit templates with validation as you type, a live preview, versions, diff, import/export."""

from __future__ import annotations

import re
from dataclasses import replace

import streamlit as st

from core.errors import AppError
from core.models import BUNDLED_NAME, embedded_models
from core.prompts import SEPARATORS, Example, PromptTemplate, Source
from ui import components, resources
from ui.state import init_state

SAMPLE_QUESTION = "How long is parental leave at full pay?"
SAMPLE_SOURCES = [
    Source("employee_handbook.pdf", 5, "Brackenridge offers 20 weeks of parental leave at full pay to every parent."),
    Source("employee_handbook.pdf", 5, "Parental leave may be taken in up to three blocks within the first two years."),
]

init_state(st.session_state)


def as_code(message: str) -> str:
    """Template fragments in an error as inline code, so Markdown shows `{question.__class__}` as typed."""
    return re.sub(r"(\{[^{}\n]*\})", r"`\1`", message)


st.title("📝 Prompt templates")
st.caption(
    "A template is a system prompt, optional few-shot examples and a user template with {question}, "
    "and {context} for retrieval. Saving makes a new version; earlier ones stay."
)
library = resources.templates()
names = library.names()


def save(template: PromptTemplate | None, data: bytes | None = None) -> None:
    # A callback: it runs before the page, while the template picker may still change.
    try:
        saved = library.save(template if template is not None else PromptTemplate.from_json(data or b""))
    except AppError as e:
        st.session_state["prompts.error"] = str(e)
    else:
        st.session_state["prompts.notice"] = f"Saved {saved.name} v{saved.version}."
        st.session_state["prompts.name"] = saved.name
        st.session_state[f"prompts.version.{saved.name}"] = saved.version  # the picker shows what was saved


if error := st.session_state.pop("prompts.error", None):
    st.error(as_code(error))
if notice := st.session_state.pop("prompts.notice", None):
    st.success(notice)
with st.expander("⬆️ Import a template"):
    uploaded = st.file_uploader("Template file (.json)", type=["json"], key="prompts.import")
    if uploaded is not None:
        st.button("Import as a new version", key="prompts.import_save", on_click=save, args=(None, uploaded.getvalue()))

pick, ver = st.columns([3, 1])
if st.session_state["prompts.name"] not in names:
    st.session_state["prompts.name"] = names[0]
name = pick.selectbox("Template", names, key="prompts.name")
versions = library.versions(name)
version = ver.selectbox("Version", versions[::-1], key=f"prompts.version.{name}")
current = library.get(name, version)
st.caption(current.description or "No description.")

key = f"prompts.edit.{name}.v{version}"
editor = st.container(key="prompts-editor")
components.commit_while_typing("prompts-editor")
system = editor.text_area("System prompt", current.system, height=110, key=f"{key}.system")
user = editor.text_area(
    "User template",
    current.user,
    height=110,
    key=f"{key}.user",
    help="Variables: {question}, {context} (retrieved sources), {examples} (few-shot as text).",
)
source_format = editor.text_input(
    "How each source is listed",
    current.source_format,
    key=f"{key}.source_format",
    help="Variables: {n} (its number), {source}, {page}, {heading}, {text}, {excerpt} (the chunk's sentences that "
    "best match the question, with the sentence after each).",
)
separators = dict(SEPARATORS)
if current.source_separator not in separators.values():  # an imported template's own
    separators[repr(current.source_separator)] = current.source_separator
labels = list(separators)
source_separator = separators[
    editor.selectbox(
        "Between sources",
        labels,
        index=list(separators.values()).index(current.source_separator),
        key=f"{key}.source_separator",
        help="A 135M model reads excerpts run together as one text better than excerpts set apart (bench/quality.py).",
    )
]
rows = st.data_editor(
    [{"question": e.question, "answer": e.answer} for e in current.examples] or [{"question": "", "answer": ""}],
    num_rows="dynamic",
    width="stretch",
    key=f"{key}.examples",
)
examples = tuple(Example(r["question"] or "", r["answer"] or "") for r in rows if (r["question"] or r["answer"]))
draft = PromptTemplate(
    name=name,
    system=system,
    user=user,
    examples=examples,
    source_format=source_format,
    source_separator=source_separator,
    description=current.description,
)

try:
    draft.validate()
except AppError as e:
    valid = False
    st.error(as_code(str(e)))
else:
    valid = True
    st.success("Valid template.")

if valid:
    st.subheader("Preview")
    messages = draft.render(SAMPLE_QUESTION, SAMPLE_SOURCES if draft.uses_context else None)
    for m in messages:
        with st.chat_message(m["role"] if m["role"] != "system" else "⚙️"):
            st.text(m["content"])
    try:
        loaded = resources.engine().get(resources.catalog().info(f"llama.cpp:{BUNDLED_NAME}"))
        prompt = loaded.format_prompt(messages)
    except AppError as e:
        st.caption(f"Token count unavailable: {e}")
    else:
        with st.expander(f"Exact prompt for {BUNDLED_NAME}: {loaded.count_tokens(prompt)} tokens"):
            st.code(prompt, language=None, wrap_lines=True)
    if base := next((m for m in embedded_models(resources.settings()) if m.completion and not m.fine_tuned), None):
        completion = draft.render_completion(SAMPLE_QUESTION, SAMPLE_SOURCES if draft.uses_context else None)
        # Counted only once the model is in DATA_DIR: a preview does not assemble a 253 MB file.
        ready = base.path is not None and base.path.is_file()
        tokens = resources.catalog().load(base).count_tokens(completion) if ready else None
        with st.expander(f"Completion form for {base.label}" + (f": {tokens} tokens" if tokens else "")):
            st.caption(
                "A pre-trained base has no chat template: it continues this text. The system prompt and the "
                "template's own words are left out; a Chinese question gets 文本：/问题：/答案：."
            )
            st.code(completion, language=None, wrap_lines=True)

save_as = st.text_input("Save as", value=name, key=f"{key}.save_as")
left, right = st.columns(2)
left.button(
    "💾 Save as a new version",
    disabled=not valid,
    type="primary",
    key="prompts.save",
    on_click=save,
    args=(replace(draft, name=save_as.strip()),),
)
right.download_button(
    "⬇️ Export this version",
    current.to_json(),
    file_name=f"{name}-v{version}.json",
    mime="application/json",
    key="prompts.export",
)

if len(versions) > 1:
    st.subheader("Compare versions")
    a, b = st.columns(2)
    old = a.selectbox("From", versions, index=len(versions) - 2, key=f"prompts.diff_from.{name}")
    new = b.selectbox("To", versions, index=len(versions) - 1, key=f"prompts.diff_to.{name}")
    st.code(library.diff(name, old, new) or "(no differences)", language="diff")
