"""The Fine-tune page's model cards: what a trained model learned, its parity check, how to serve it elsewhere."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from core import adapters
from core.errors import AppError
from core.finetune import modes, replay, serving
from core.strategies import FT_TEMPLATE, Answer, Strategy
from ui import resources
from ui.finetune import loss_chart, minutes, when


def ask(model_id: str, question: str) -> Answer:
    """Stream a fine-tuned model's answer to one question with the FT template."""
    reply = resources.runtime().run(Strategy("FT", model_id, FT_TEMPLATE), question)
    st.write_stream(iter(reply))  # the text streams; the Answer comes after it
    return reply.answer()


FIRST_TOKENS = 4  # a wrong tensor name or transposition shows as disagreement this early (core.finetune.parity)


def parity_note(parity: adapters.ParityInfo | None) -> str:
    """The parity check as a verdict the user can act on, its figures after it."""
    cases = parity.cases if parity else []
    figures = parity.summary if parity else ""
    if not cases:
        return f"Parity: {figures or 'not checked'}"
    early = [c for c in cases if c.agree < min(FIRST_TOKENS, c.compared)]
    if all(c.agree == c.compared for c in cases):
        verdict = (
            f"✅ Parity: llama.cpp with the adapter answers exactly as the trained model on all {len(cases)} prompts"
        )
    elif not early:
        verdict = (
            f"✅ Parity: fine. llama.cpp with the adapter agrees with the trained model on at least the first "
            f"{FIRST_TOKENS} tokens of every prompt and drifts later, as rounding in quantized weights does; a broken "
            "export differs from the first tokens"
        )
    else:
        verdict = (
            f"⚠️ Parity: {len(early)} of {len(cases)} prompts differ within their first {FIRST_TOKENS} tokens, so "
            "llama.cpp may not apply the adapter as it was trained. Compare the answers below, and train again"
        )
    return f"{verdict} ({figures})."


def replayed_note(info: adapters.ReplayInfo | None) -> str | None:
    """How many general examples were replayed, and why fewer than the settings asked for when so."""
    if info is None:
        return None
    replayed, asked = info.examples, info.asked
    note = f"Replayed {replayed} general examples answered by the base (limits forgetting)"
    if asked and replayed < asked:
        note += (
            f"; {asked} were asked for: the base's other {asked - replayed} answers ran past "
            f"{replay.MAX_NEW_TOKENS} tokens and were left out, since learning them would teach stopping mid-sentence"
        )
    return note


def training_line(m: adapters.AdapterManifest) -> str:
    """The model card's line about the data it learned and what training took."""
    d = m.dataset
    data = (
        f"Dataset **{d.name}** (version `{d.hash}`, {d.train} train / {d.validation} validation pairs)"
        if d
        else "Dataset not recorded"
    )
    took = f"{minutes(m.train_seconds or 0)} ({m.tokens_per_s or 0} tokens/s on {m.device})"
    return f"{data} · {m.train_tokens or 0:,} tokens in {took}"


def adapter_card(
    adapter: adapters.Adapter, model_id: str, on_delete: Any, on_register: Any | None, *, expanded: bool = False
) -> None:
    m = adapter.manifest
    with st.expander(f"🎯 {model_id.removeprefix('llama.cpp:')} · trained {when(m.created)}", expanded=expanded):
        st.caption(training_line(m))
        st.caption(mode_line(m.mode))
        if note := replayed_note(m.replay):
            st.caption(note)
        st.caption(parity_note(m.parity))
        if m.losses:
            loss_chart(m.losses.train, m.losses.validation)
        if m.parity and m.parity.cases:
            st.dataframe(
                pd.DataFrame([c.model_dump() for c in m.parity.cases])[
                    ["kind", "question", "llama_text", "hf_text", "agree", "compared"]
                ],
                hide_index=True,
                width="stretch",
                column_config={
                    "llama_text": st.column_config.TextColumn("llama.cpp + adapter", help="Its greedy answer."),
                    "hf_text": st.column_config.TextColumn(
                        "HF + PEFT", help="That answer up to the first token it would choose otherwise, then its token."
                    ),
                    "agree": st.column_config.NumberColumn("leading tokens agree"),
                },
            )
        if m.ollama:
            how = {"adapter": " (base + adapter)", "merged": f" (merged model: {m.ollama.merged})"}
            st.caption(
                f"🦙 Registered with Ollama as `{m.ollama.model}` at {m.ollama.host}{how.get(m.ollama.route or '', '')}"
            )
        elif m.ollama_error:
            st.caption(f"🦙 Not in Ollama: {m.ollama_error}")
        serve_elsewhere(adapter)
        key = f"finetune.model.{adapter.name}"
        q_col, b_col = st.columns([5, 1], vertical_alignment="bottom")
        question = q_col.text_input("Ask it", key=f"{key}.question", placeholder="A question from its dataset")
        if b_col.button("Ask", key=f"{key}.ask", disabled=not question.strip()):
            answer = ask(model_id, question)
            if answer.error:
                st.error(answer.error)
        with st.popover("Manifest"):
            st.code(json.dumps(m.as_json(), indent=2, ensure_ascii=False), language="json")
        c1, c2 = st.columns(2)
        if on_register is not None:
            c1.button("🦙 Register with Ollama", key=f"{key}.ollama", on_click=on_register, args=(adapter.name,))
        c2.button("🗑 Delete", key=f"{key}.delete", on_click=on_delete, args=(adapter.name,))


def mode_line(mode: adapters.ModeInfo | None) -> str:
    """The model card's line about how its data was made."""
    if not mode:
        return "Mode: FT then RAG (plain questions)"
    label = modes.MODES[mode.name][0] if mode.name in modes.MODES else mode.name  # type: ignore[index]
    parts = [f"Mode: **{label}**"]
    if mode.kb:
        version = f" v{mode.template_version}" if mode.template_version else ""
        parts.append(f"knowledge base {mode.kb} · {mode.template}{version} · top-{mode.top_k}")
    if mode.without_golden is not None:
        parts.append(f"{mode.without_golden:.0%} of examples without the answer's chunk")
    if mode.examples:
        parts.append(f"answer chunk retrieved for {mode.golden_retrieved}/{mode.examples}")
    if mode.round:
        parts.append(f"round {mode.round}")
    if mode.correct_before is not None:
        parts.append(f"learned from run {mode.source_run} ({mode.correct_before:.0%} correct before)")
    return " · ".join(parts)


def serve_elsewhere(adapter: adapters.Adapter) -> None:
    """How to serve the model with llama.cpp's server and with vLLM; one click loads it where a server allows."""
    k = f"finetune.model.{adapter.name}.serve"
    st.markdown("**Serve it elsewhere**")
    base = resources.base_file(adapter)
    if base is not None:
        st.caption("llama.cpp's server, the GGUF adapter on its base:")
        st.code(serving.llama_server_command(base, adapter.path), language="bash")
    else:
        st.caption(f"llama.cpp's server: its base, {adapter.manifest.base.file}, is not on this machine any more.")
    folder = adapter.folder / serving.PEFT_FOLDER
    if not folder.is_dir():
        st.caption("vLLM: no PEFT folder (trained before the export existed); train it again to serve it with vLLM.")
        return
    if warning := serving.rank_warning(int(serving.peft_config(folder).get("r", 0))):
        st.caption(f"⚠️ {warning}")
    st.caption(
        f"vLLM, the PEFT folder on the Hugging Face base it names (copy `{folder}` to the vLLM machine; trained "
        "on the 4-bit GGUF's weights, so answers there may differ a little):"
    )
    st.code(serving.vllm_command(adapter.name, folder), language="bash")
    request = serving.load_request(adapter.name, folder)
    st.caption("Or load it into a running vLLM (VLLM_ALLOW_RUNTIME_LORA_UPDATING=True): POST /v1/load_lora_adapter")
    st.code(json.dumps(request, indent=2), language="json")
    for name in resources.adapter_loaders():
        if st.button(f"Load into `{name}`", key=f"{k}.{name}"):
            try:
                said = resources.load_adapter_into(name, request["lora_name"], request["lora_path"])
            except AppError as e:
                st.error(str(e))
            else:
                st.success(f"{name}: {said or 'loaded'}; it is listed as `{name}:{adapter.name}`.")
                resources.models_changed()
