"""Fine-tune page pieces: the pair editor, the settings form, the live job panels, the training modes.

The trained models' cards are ui.finetune_models'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from core.finetune import modes, replay, serving
from core.finetune.datasets import Pair, check_lengths
from core.finetune.pipeline import TrainRequest
from core.finetune.train_settings import TrainSettings
from core.lab.rounds import LoopView, Round
from core.lab.start import preparing, start_mode
from core.lab.training import JobView
from core.models import CHINESE_BASE, ModelInfo
from core.strategies import RAG_TEMPLATE, RAG_TOP_K
from core.tables import RowIssue
from core.text import is_cjk
from ui import resources

ALL_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULTS = TrainSettings()


def minutes(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def when(iso: str) -> str:
    """An ISO timestamp as a person reads it, in the server's local time: "24 Nov 2026, 14:05"."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso or "at an unknown time"
    return moment.astimezone().strftime("%-d %b %Y, %H:%M")


def issues_table(issues: Sequence[RowIssue]) -> None:
    st.dataframe(
        pd.DataFrame([asdict(i) for i in issues], columns=["row", "field", "message"]),
        hide_index=True,
        width="stretch",
        column_config={"row": st.column_config.NumberColumn("Row", width="small")},
    )


def pair_editor(pairs: list[dict[str, str]], key: str) -> list[Pair]:
    """An editable table of pairs (add, edit, delete rows); returns the non-empty rows as edited.

    Pairs drawn from a knowledge base keep the sentence they came from (`evidence`, shown and editable):
    joint training learns that sentence, and the retriever page finds the question's chunk by it.
    """
    with_evidence = any(p.get("evidence") for p in pairs)
    columns = ["question", "answer", "evidence"] if with_evidence else ["question", "answer"]
    frame = pd.DataFrame(pairs, columns=columns)
    edited = st.data_editor(
        frame,
        num_rows="dynamic",
        width="stretch",
        key=key,
        column_config={
            "question": st.column_config.TextColumn("Question", width="large", required=True),
            "answer": st.column_config.TextColumn(
                "Answer", width="medium" if with_evidence else "large", required=True
            ),
            "evidence": st.column_config.TextColumn("From the sentence", width="large"),
        },  # fmt: skip
    )
    cells = [["" if pd.isna(v) else str(v).strip() for v in row] for row in edited.itertuples(index=False)]
    return [Pair(row[0], row[1], evidence=row[2] if with_evidence else "") for row in cells if row[0] and row[1]]


def base_picker(pairs: Sequence[Pair]) -> ModelInfo:
    """The base model to fine-tune: SmolLM2 for English pairs, Gemma 3 270M (it reads Chinese) for Chinese ones."""
    bases = resources.base_models()
    chinese = is_cjk(" ".join(p.question for p in pairs))
    default = next((i for i, m in enumerate(bases) if chinese and m.id == f"llama.cpp:{CHINESE_BASE}"), 0)
    choice = st.selectbox(
        "Base model",
        range(len(bases)),
        index=default,
        format_func=lambda i: bases[i].label,
        key="finetune.base",
        help="SmolLM2-135M-Instruct is a chat model that reads English. Gemma 3 270M is a pre-trained base that "
        "reads Chinese: it has no chat template, so it is trained and served in completion form "
        "(Question: … Answer: …, 问题：… 答案：…), one line per answer. Chinese pairs start on Gemma, at a quarter of "
        "SmolLM2's learning rate (5e-4). Measured on the Chinese sample's 30 facts (FT then RAG): RAG 37%; FT+RAG "
        "73% at 2e-3 and 83% at 5e-4; its adapters forget more of what the base knew than SmolLM2's (67 control "
        "points at 2e-3, 33 at 5e-4).",
    )
    return bases[int(choice)]


def length_issues(pairs: Sequence[Pair], system: str | None, max_length: int, base: ModelInfo) -> list[RowIssue]:
    """Rows over the training length, counted with the base model's tokenizer and prompt form."""
    loaded = resources.catalog().load(base)

    def count(pair: Pair) -> int:
        prompt = loaded.format_prompt(pair.prompt_messages(system))
        return loaded.count_tokens(prompt) + loaded.count_tokens(pair.answer) + 1  # + end of turn

    return check_lengths(pairs, count, max_length)


# What the replay settings cost and bought, for the settings' help (bench/finetune.py --sweep, the 40 sample facts).
REPLAY_MEASURED = (
    "Measured on the 40 sample facts (6 epochs), control-set points forgotten and training tokens: none replayed "
    "62 (11,800 tokens); 80 replayed once 24 (16,500); twice 7 (21,100); every epoch 39,700 tokens. With "
    "bfloat16 (not the default): 6 epochs twice 10; 5 epochs twice 3 (19,100), three times 7 (23,800)."
)


def settings_form(defaults: TrainSettings = DEFAULTS, key: str = "finetune.settings") -> TrainSettings:
    """LoRA settings starting from `defaults` (the trainer's, or a mode's); widget keys live under `key`."""
    k = key
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs", 1, 50, defaults.epochs, key=f"{k}.epochs")
    max_steps = c2.number_input(
        "Max steps", 0, 5000, defaults.max_steps, key=f"{k}.max_steps", help="0: as many as the epochs take."
    )
    batch = c3.number_input("Batch size", 1, 32, defaults.batch_size, key=f"{k}.batch")
    lr = c4.number_input("Learning rate", 1e-5, 0.1, defaults.learning_rate, format="%.5f", step=1e-4, key=f"{k}.lr")
    c1, c2, c3, c4 = st.columns(4)
    rank = c1.number_input("LoRA rank", 1, 128, defaults.rank, key=f"{k}.rank")
    alpha = c2.number_input("LoRA alpha", 1, 256, defaults.alpha, key=f"{k}.alpha")
    max_length = c3.number_input("Max length (tokens)", 32, 2048, defaults.max_length, key=f"{k}.max_length")
    val = c4.number_input(
        "Validation share", 0.0, 0.45, defaults.validation_fraction, 0.05, key=f"{k}.val",
        help="Pairs held out to measure validation loss (none when there are fewer than 5 pairs).",
    )  # fmt: skip
    if warning := serving.rank_warning(int(rank)):
        st.caption(f"⚠️ {warning}")
    c1, c2 = st.columns([3, 1])
    modules = c1.multiselect("Target modules", ALL_MODULES, list(defaults.target_modules), key=f"{k}.modules")
    top = c2.number_input(
        "Adapted layers", 0, 128, defaults.top_layers, key=f"{k}.top_layers",
        help="LoRA on this many of the last layers only (0: every layer). Each step is cheaper, since the "
        "backward pass stops below them, but on the 40 sample facts the top 15 of SmolLM2's 30 layers forgot more "
        "control points: 14 against 7 with the default replay.",
    )  # fmt: skip
    c1, c2 = st.columns(2)
    general = c1.number_input(
        "General examples replayed", 0, len(replay.prompts()), defaults.replay, 10, key=f"{k}.replay",
        help="General questions (facts, sums, how-tos) answered by the base model itself before training and "
        f"trained on with your data, so the new model keeps its answers to everything else. 0 turns it off. "
        f"{REPLAY_MEASURED}",
    )  # fmt: skip
    passes = c2.number_input(
        "Replay passes", 1, 50, defaults.replay_passes, key=f"{k}.replay_passes",
        help="How many times each general example is trained on, spread over the epochs (at most once an "
        "epoch): your own examples come every epoch, the general ones only need to keep the base's answers. "
        f"{REPLAY_MEASURED}",
    )  # fmt: skip
    return TrainSettings(
        rank=int(rank),
        alpha=int(alpha),
        target_modules=tuple(modules),
        learning_rate=float(lr),
        epochs=int(epochs),
        max_steps=int(max_steps),
        batch_size=int(batch),
        max_length=int(max_length),
        validation_fraction=float(val),
        replay=int(general),
        replay_passes=int(passes),
        top_layers=int(top),
    )


def replay_note(settings: TrainSettings, base: str) -> str:
    """What the run does against forgetting, in a line the page shows under the settings."""
    if not settings.replay:
        return (
            "⚠️ No general examples: trained on your data alone, the model may lose what it knew "
            "(turn them back on under the LoRA settings)."
        )
    passes = min(settings.replay_passes, max(1, settings.epochs))
    spread = "each once, spread over the epochs" if passes == 1 else f"each {passes} times over the epochs"
    return (
        f"🧠 The run also trains on {settings.replay} general questions answered by {base} itself ({spread}), so "
        "the new model keeps its answers to everything else (limits forgetting; change it under the LoRA settings)."
    )


def loss_frame(train: Sequence[Sequence[float]], validation: Sequence[Sequence[float]]) -> pd.DataFrame:
    """Both curves in long form: each series keeps its own points (validation comes once an epoch)."""
    rows = [(int(step), float(loss), "train") for step, loss in train]
    rows += [(int(step), float(loss), "validation") for step, loss in validation]
    return pd.DataFrame(rows, columns=["step", "loss", "series"])


def overfitting_note(train: Sequence[Sequence[float]], validation: Sequence[Sequence[float]]) -> str | None:
    """In words, when validation loss has risen from its best while training loss kept falling.

    A step's training loss is one small batch's, so it jumps about: each check is compared by the mean
    training loss of the steps since the check before it, not by any single step.
    """
    if len(validation) < 2 or not train:
        return None
    checks = [int(step) for step, _ in validation]
    best_at = min(range(len(validation)), key=lambda i: validation[i][1])
    best, last = validation[best_at][1], validation[-1][1]
    if last <= best * 1.05 or last - best < 0.05:
        return None

    def mean_before(i: int) -> float | None:
        since = checks[i - 1] if i else -math.inf
        losses = [float(loss) for step, loss in train if since < step <= checks[i]]
        return sum(losses) / len(losses) if losses else None

    then, now = mean_before(best_at), mean_before(len(checks) - 1)
    if then is None or now is None or now >= then:
        return None  # validation worse but training no better: noise or instability, not memorising
    return (
        f"Validation loss rose from {best:.2f} (step {checks[best_at]}) to {last:.2f} (step {checks[-1]}) while "
        f"training loss fell from {then:.2f} to {now:.2f} (the mean of the steps before each): the model is "
        "memorising the training pairs rather than learning what carries over. Try fewer epochs, a lower "
        "learning rate or a smaller rank."
    )


def loss_chart(train: Sequence[Sequence[float]], validation: Sequence[Sequence[float]]) -> None:
    if not train:
        return
    frame = loss_frame(train, validation)
    chart = (
        alt.Chart(frame)
        .mark_line(point=alt.OverlayMarkDef(size=30))
        .encode(
            x=alt.X("step:Q", title="step", axis=alt.Axis(format="d", tickMinStep=1)),
            y=alt.Y("loss:Q", title="loss"),
            color=alt.Color(
                "series:N", title=None, scale=alt.Scale(domain=["train", "validation"], range=["#1f77b4", "#ff7f0e"])
            ),
            tooltip=["series", "step", alt.Tooltip("loss:Q", format=".3f")],
        )
        .properties(height=220)
    )
    st.altair_chart(chart, width="stretch")
    if note := overfitting_note(train, validation):
        st.warning(f"📈 {note}")


def job_panel(view: JobView, on_cancel: Any, *, mine: bool = True) -> None:
    """Phase, progress, elapsed and estimated time, live loss curve and a Stop button.

    A run started in another tab (`mine` false) is shown too; stopping it takes a confirmation.
    """
    last = view.steps[-1] if view.steps else None
    done = last.step / last.total_steps if last else 0.0
    if view.phase == "training" and last:
        text = (
            f"Step {last.step}/{last.total_steps} · epoch {last.epoch:.1f} · loss {last.loss:.3f} · "
            f"{minutes(view.elapsed_s)} elapsed · about {minutes(last.eta_s)} left"
        )
    else:
        text = f"{view.message} ({minutes(view.elapsed_s)} elapsed)"
    if view.running:
        st.progress(done, text=text)
        if mine:
            st.button("⏹ Stop training", key="finetune.cancel", on_click=on_cancel)
        else:
            st.caption("This run was started in another tab or session.")
            sure = st.checkbox("Stop someone else's run", key="finetune.cancel_other")
            st.button("⏹ Stop it", key="finetune.cancel", disabled=not sure, on_click=on_cancel, args=(True,))
    elif view.phase == "done":
        st.success(f"✅ {view.adapter} is trained and registered: pick it in Compare (FT and FT+RAG use it).")
    elif view.phase == "cancelled":
        st.warning(f"⏹ {view.message}")
    else:
        st.error(view.message)
    loss_chart(
        [[s.step, s.loss] for s in view.steps],
        [[s.step, s.val_loss] for s in view.steps if s.val_loss is not None],
    )


def mode_picker(default: modes.Mode) -> modes.Mode:
    """The four ways to combine RAG and fine-tuning, one line each, `default` chosen on the first visit."""
    keys = list(modes.MODES)
    chosen = st.radio(
        "Mode",
        keys,
        index=keys.index(default),
        format_func=lambda k: modes.MODES[k][0],
        captions=[modes.MODES[k][1] for k in keys],
        key="finetune.mode",
        help=modes.DEFAULT_MODE_HELP,
    )
    return chosen or default


def joint_form(kbs: Sequence[str], rag_templates: Sequence[str], *, memory_share: bool = True) -> modes.JointSettings:
    """Where the retrieved chunks come from and how they are rendered; defaults are the FT+RAG preset's."""
    k = "finetune.joint"
    c1, c2, c3, c4 = st.columns(4)
    kb = c1.selectbox("Knowledge base", kbs, key=f"{k}.kb")
    default = rag_templates.index(RAG_TEMPLATE) if RAG_TEMPLATE in rag_templates else 0
    template = c2.selectbox("RAG template", rag_templates, index=default, key=f"{k}.template")
    top_k = c3.number_input("Top-k", 1, 10, RAG_TOP_K, key=f"{k}.top_k", help="Chunks in each example's prompt.")
    without = c4.slider(
        "Without the answer's chunk", 0.0, 0.9, modes.WITHOUT_GOLDEN, 0.05, key=f"{k}.without",
        help="Share of examples whose prompt lacks the chunk that holds the answer: the model learns to answer "
        "from memory when retrieval misses. 0 by default: on the held-out sample sets a fifth cost 3 of 24 and 2 "
        "of 20 FT+RAG answers, read from chunks retrieval had found (bench/modes.py).", disabled=not memory_share,
    )  # fmt: skip
    return modes.JointSettings(str(kb), str(template), None, int(top_k), float(without))


def rounds_chart(rounds: Sequence[Round]) -> None:
    """Correctness per round (round 0: RAG on the base), and the held-out set's when one was measured."""
    rows = [(r.round, r.correct, "trained-on questions") for r in rounds]
    rows += [(r.round, r.measured, "measuring set") for r in rounds if r.measured is not None]
    frame = pd.DataFrame(rows, columns=["round", "correct", "series"])
    chart = (
        alt.Chart(frame)
        .mark_line(point=alt.OverlayMarkDef(size=60))
        .encode(
            x=alt.X("round:Q", title="round", axis=alt.Axis(format="d", tickMinStep=1)),
            y=alt.Y("correct:Q", title="correct", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            color=alt.Color("series:N", title=None),
            tooltip=["series", "round", alt.Tooltip("correct:Q", format=".0%")],
        )
        .properties(height=220)
    )
    st.altair_chart(chart, width="stretch")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "round": r.round,
                    "evaluated": r.strategy,
                    "correct": f"{r.correct:.0%}",
                    "wrong": r.failures,
                    "trained on": r.trained_on or None,
                    "training": minutes(r.train_seconds) if r.adapter else "",
                    "model": r.adapter or "base",
                    "run": r.run_id,
                }
                for r in rounds
            ]  # fmt: skip
        ),
        hide_index=True,
        width="stretch",
    )


def before_after_table(rows: Sequence[dict[str, Any]]) -> None:
    """The staged mode's result: each question's verdict before (RAG) and after (FT+RAG)."""
    fixed = sum(1 for r in rows if r["after"] and not r["before"])
    broke = sum(1 for r in rows if r["before"] and not r["after"])
    st.caption(f"{fixed} fixed, {broke} broken, of {len(rows)} questions.")
    frame = pd.DataFrame(rows, columns=["question", "expected", "before", "after", "before_answer", "after_answer"])
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={
            "before": st.column_config.CheckboxColumn("RAG ✓"),
            "after": st.column_config.CheckboxColumn("FT+RAG ✓"),
        },
    )


def loop_panel(view: LoopView, on_cancel: Any) -> None:
    """Phase and progress of a staged or iterative run, the chart of its rounds, and a Stop button."""
    done, total = view.cells
    last = view.steps[-1] if view.steps else None
    if view.phase == "training" and last:
        fraction = last.step / last.total_steps
        text = f"Training: step {last.step}/{last.total_steps} · loss {last.loss:.3f} · {minutes(last.eta_s)} left"
    elif view.phase == "evaluating" and total:
        fraction, text = done / total, f"{view.message} {done}/{total}"
    else:
        fraction, text = 0.0, view.message
    rounds = f"{len(view.rounds)} of at most {view.request.max_rounds + 1} evaluations done"
    if view.running:
        st.progress(min(1.0, fraction), text=f"{text} ({rounds}, {minutes(view.elapsed_s)} elapsed)")
        st.button("⏹ Stop", key="finetune.loop.cancel", on_click=on_cancel)
    elif view.phase == "done":
        st.success(f"✅ {view.message}")
    elif view.phase == "cancelled":
        st.warning(f"⏹ {view.message}")
    else:
        st.error(view.message)
    if view.rounds:
        rounds_chart(view.rounds)


def start_run(
    mode: modes.Mode, request: TrainRequest, joint: modes.JointSettings | None, rounds: int, owner: str
) -> None:
    """Start the chosen mode in the background; joint examples are rendered first (a few seconds of retrieval).

    Raises:
        AppError: a run is going already, or the settings or the knowledge base are unusable.
    """
    with st.spinner(preparing(mode, request) or "Starting…"):
        start_mode(mode, resources.jobs(), resources.runtime(), resources.settings().data_dir, request, joint,
                   rounds=rounds, embedder=lambda: resources.embedder().embeddings, owner=owner)  # fmt: skip
