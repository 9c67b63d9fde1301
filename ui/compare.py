"""Compare-page pieces: how an answer is shown (a column's settings are ui.strategy_editor's)."""

from __future__ import annotations

import re

import streamlit as st

from core.errors import AppError
from core.evaluation.support import Embed, Support, supporting_sentences
from core.finetune.datasets import Correction, add_correction
from core.strategies import Answer
from ui import components, resources


def answer_markdown(text: str, column: int, n_sources: int) -> str:
    """Model text as Markdown: citations link to their sources; remote images are not loaded."""
    safe = text.replace("![", "!\\[")

    def link(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return f"[\\[{n}\\]](#src-{column}-{n})" if 1 <= n <= n_sources else m.group(0)

    return re.sub(r"\[(\d{1,2})\]", link, safe)


def render_answer(i: int, answer: Answer) -> None:
    if answer.text:
        st.markdown(answer_markdown(answer.text, i, len(answer.sources)))
    if answer.error:
        st.error(answer.error)
    # Stopped (the page has only the text so far) or refused before reaching the model: no figures to show.
    if answer.error and not answer.prompt:
        if answer.text:
            st.caption(f"⏱️ stopped after {answer.total_s:.2f} s")
        return
    if answer.strategy.retrieval and answer.text.strip() and not answer.error:
        support_lines(answer)
    for warning in answer.warnings:
        st.warning(warning)
    ttft = f"{answer.ttft_s:.2f} s" if answer.ttft_s is not None else "–"
    tokens = f"{answer.prompt_tokens or 0} in / {answer.completion_tokens or 0} out"
    if answer.tokens_counted:
        tokens += " (counted by the app: the server reported no usage)"
    waited = f" · waited {answer.queued_s:.1f} s for the model" if answer.queued_s >= 0.1 else ""
    st.caption(f"⏱️ first token {ttft} · total {answer.total_s:.2f} s · 🔢 {tokens}{waited}")
    s = answer.strategy
    st.caption(f"{s.model} · {s.template} v{answer.template_version}")
    if s.retrieval:
        supports = supported_by(answer)
        # The citation anchors ride on the heading: an element of their own showed as an empty block.
        anchors = "".join(f'<span id="src-{i}-{n}"></span>' for n in range(1, len(answer.sources) + 1))
        st.markdown(f"{anchors}**Sources** ({len(answer.sources)}) from knowledge base "
                    f"**{components.md_escape(s.kb or '')}**, top-{s.top_k}", unsafe_allow_html=True)  # fmt: skip
        marked = {sp.chunk: (sp.start, sp.end) for sp in reversed(supports)}
        for n, hit in enumerate(answer.sources, start=1):
            components.hit_card(n, hit, expanded=n - 1 in marked, highlight=marked.get(n - 1))
    with st.expander("Exact prompt"):
        st.code(answer.prompt or "(not sent)", language=None, wrap_lines=True)
    wrong_answer(i, answer)


@st.cache_data(show_spinner=False, max_entries=256)
def _supports(answer: str, question: str, chunks: tuple[str, ...]) -> list[Support]:
    try:
        embed: Embed | None = resources.embedder().embeddings.embed_documents
    except AppError:
        embed = None  # words alone decide
    return supporting_sentences(answer, question, chunks, embed)


def supported_by(answer: Answer) -> list[Support]:
    """The retrieved sentences that support a RAG answer (computed once per answer, not on every rerun)."""
    if not answer.sources or not answer.text.strip() or answer.error:
        return []
    return _supports(answer.text, answer.question, tuple(h.text for h in answer.sources))


def support_lines(answer: Answer) -> None:
    """Under a RAG answer: which sentence of which source supports it, or plainly that none does."""
    supports = supported_by(answer)
    if not answer.sources:
        return
    if not supports:
        st.caption("⚠️ Not supported: no sentence of the retrieved sources supports this answer.")
        return
    for sp in supports:
        hit = answer.sources[sp.chunk]
        sentence = components.md_escape(" ".join(sp.sentence.split()))
        st.markdown(f"**Supported by:** {components.md_escape(hit.filename)}, p. {hit.page} — «{sentence}»")


def wrong_answer(i: int, answer: Answer) -> None:
    """Store a correction for fine-tuning (the staged loop: collect failures, train on them).

    A form, so that the text typed and the click on Save arrive together: with a plain text area the
    first click only took the focus away, reran the page, closed the popover and saved nothing.
    """
    with st.popover("👎 Wrong answer"), st.form(f"compare.col{i}.correction", border=False):
        corrected = st.text_area("Correct answer", key=f"compare.col{i}.corrected")
        dataset = st.text_input("Dataset", value="corrections", key=f"compare.col{i}.dataset")
        if st.form_submit_button("Save correction", key=f"compare.col{i}.save_correction"):
            if not corrected.strip():
                st.warning("Type the correct answer first.")
                return
            try:
                path = add_correction(
                    resources.settings().data_dir / "datasets",
                    dataset,
                    Correction(answer.question, corrected, answer.text, answer.strategy.name, answer.strategy.model),
                )
            except AppError as e:
                st.error(str(e))
            else:
                st.toast(f"Saved the correction to dataset {path.stem}.", icon="✅")
                st.success(f"Saved to dataset {path.stem}.")
