"""An optional LLM judge: an Ollama model the user picks grades each answer CORRECT or WRONG.

Only through Ollama: the embedded 135M model cannot judge. The prompt is fixed and shown on the
page; the judge's reply is stored next to its verdict, so every verdict can be read and doubted.
"""

from __future__ import annotations

import re

from core.errors import AppError, EvaluationError
from core.models import ModelCatalog

JUDGE_SYSTEM = (
    "You grade answers to questions about a company's documents. An answer is CORRECT when it states the "
    "facts of the expected answer (other wording, extra detail and a different unit spelling are fine) and "
    "WRONG when a fact is missing, different or contradicted."
)
JUDGE_USER = (
    "Question: {question}\nExpected answer: {expected}\nAnswer to grade: {answer}\n\n"
    "Reply with one word: CORRECT or WRONG."
)
_VERDICT = re.compile(r"\b(CORRECT|WRONG|INCORRECT)\b", re.IGNORECASE)


def judge_messages(question: str, expected: str, answer: str) -> list[dict[str, str]]:
    user = JUDGE_USER.replace("{question}", question).replace("{expected}", expected).replace("{answer}", answer)
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(reply: str) -> bool | None:
    """CORRECT -> True, WRONG or INCORRECT -> False, anything else -> None (no verdict)."""
    match = _VERDICT.search(reply)
    return None if match is None else match.group(1).upper() == "CORRECT"


def check_judge(model_id: str) -> None:
    if model_id.startswith("llama.cpp:"):
        raise EvaluationError(
            "The LLM judge must be a served model (Ollama or an OpenAI-compatible server); the embedded one is too "
            "small to judge."
        )


def judge(models: ModelCatalog, model_id: str, question: str, expected: str, answer: str) -> tuple[bool | None, str]:
    """The judge's verdict and its reply (an error is a reply with no verdict, never a failed run)."""
    check_judge(model_id)
    if not answer.strip():
        return False, "(empty answer: not sent to the judge)"
    messages = judge_messages(question, expected, answer)
    try:
        prepared = models.prepare(model_id, messages, temperature=0.0, max_tokens=8)
        reply = str(prepared.chat.invoke([(m["role"], m["content"]) for m in messages]).content)
    except AppError as e:
        return None, f"(judge failed: {e})"
    except Exception as e:  # noqa: BLE001 - the judge is optional: its failure is recorded, not raised
        return None, f"(judge failed: {e})"
    return parse_verdict(reply), reply.strip()
