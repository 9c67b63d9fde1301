"""Replay: general questions answered by the base model itself, mixed into every training run.

A LoRA trained only on a few dozen facts (or RAG prompts) drifts on everything else: asked a
general question with the plain prompt, the adapter answers with its training facts. Mixing in
general instructions with the answers the base gives them (greedy, before the adapter exists)
makes "keep answering as the base did" part of what the adapter learns: self-distillation.

The prompts (`replay_prompts.jsonl`) are a set of their own: none is a control question
(`samples/control_questions.jsonl`), on which forgetting is measured.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from core.errors import TrainingError
from core.files import atomic_write_text
from core.finetune.datasets import chat_prompt
from core.finetune.examples import Rendered
from core.prompts import COMPLETION_STOPS, completion_from_messages

log = logging.getLogger(__name__)

PROMPTS_FILE = Path(__file__).resolve().parent / "replay_prompts.jsonl"
# The plain template asks for one or two short sentences. An answer cut off here is left out: keeping its whole
# sentences (bench/finetune.py, the 40 sample facts, float32) forgot 17 control-set points against 7, and cutting
# every answer at 32 tokens 21 (bfloat16, against 10): the base's answers are worth replaying whole.
MAX_NEW_TOKENS = 64

_lock = threading.Lock()


@cache
def prompts() -> tuple[str, ...]:
    """The general questions and instructions, in the file's order."""
    rows = [json.loads(line) for line in PROMPTS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return tuple(str(r["question"]) for r in rows)


def chosen(n: int) -> tuple[str, ...]:
    """The first `n` prompts, taken in turn from the file, so any count keeps the mix of kinds.

    Raises:
        TrainingError: more than there are.
    """
    every = prompts()
    if not 0 <= n <= len(every):
        raise TrainingError(f"Replay takes 0 to {len(every)} general examples, not {n}.")
    step = len(every) / n if n else 1.0
    return tuple(every[int(i * step)] for i in range(n))


def base_answers(base_path: Path, questions: Sequence[str], system: str | None, store: Path | None = None
                 ) -> dict[str, str]:  # fmt: skip
    """Each question's answer from the base in llama.cpp, as the FT strategy serves it (greedy, no adapter).

    Answers are kept in `store` (a JSON file per base model, `cache_file`), by system prompt and question: only
    the first run asks. An answer cut off at `MAX_NEW_TOKENS` is left out (learning it would teach
    stopping mid-sentence).
    """
    from core.engine import LoadedModel, llama_thread

    with _lock:
        stored: dict[str, dict[str, str]] = _read(store)
        known = stored.setdefault(system or "", {})
        missing = [q for q in questions if q not in known]
        if missing:
            loaded = LoadedModel(base_path, n_ctx=1024)
            try:
                for q in missing:
                    text, finished = llama_thread().call(_greedy_answer, loaded, chat_prompt(q, system))
                    if not finished:
                        log.info("Replay: the base's answer to %r runs past %d tokens; left out", q, MAX_NEW_TOKENS)
                    known[q] = text if finished else ""
            finally:
                loaded.close()
            if store is not None:
                store.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(store, json.dumps(stored, ensure_ascii=False, indent=1))
        return {q: known[q] for q in questions if known.get(q)}


def _greedy_answer(loaded: Any, messages: list[dict[str, str]]) -> tuple[str, bool]:
    """The base's greedy answer as the FT strategy gets it, and whether it ended before `MAX_NEW_TOKENS`.

    A chat completion, or for a base model the first line it writes after the completion form (`core.engine`).
    """
    from core.engine import REPEAT_PENALTY, fresh_prompt

    fresh_prompt(loaded.llama)  # as the engine serves it
    common: dict[str, Any] = {"temperature": 0.0, "max_tokens": MAX_NEW_TOKENS, "repeat_penalty": REPEAT_PENALTY}
    if loaded.completion:
        prompt = completion_from_messages(messages)
        reply: Any = loaded.llama.create_completion(prompt, stop=["\n", *COMPLETION_STOPS], **common)
        choice = reply["choices"][0]
        return str(choice["text"]).strip(), choice.get("finish_reason") == "stop"
    reply = loaded.llama.create_chat_completion(messages=messages, **common)
    choice = reply["choices"][0]
    return str(choice["message"].get("content") or "").strip(), choice.get("finish_reason") == "stop"


def _read(store: Path | None) -> dict[str, dict[str, str]]:
    if store is None or not store.exists():
        return {}
    try:
        data = json.loads(store.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # asked again and rewritten
    return data if isinstance(data, dict) else {}


def cache_file(data_dir: Path, base_path: Path) -> Path:
    """Where the base's replay answers are kept: one file per base model, by its file's name and size."""
    return data_dir / "replay" / f"{base_path.stem}-{base_path.stat().st_size}.json"


def examples(base_path: Path, n: int, system: str | None, store: Path | None = None) -> list[Rendered]:
    """`n` general questions (fewer when the base's answer runs long) with the base's answers, plain template.

    Each is a rendered example, so it keeps the plain prompt whatever the run's own examples are
    (RAG prompts, in the joint modes).
    """
    questions = chosen(n)
    answered = base_answers(base_path, questions, system, store)
    return [Rendered.of(q, answered[q], chat_prompt(q, system)) for q in questions if q in answered]
