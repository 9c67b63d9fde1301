"""Register a fine-tuned adapter with an Ollama server: blobs, then /api/create with `adapters` (or merged).

Ollama's documented API: `HEAD /api/blobs/sha256:<hex>` says whether a blob is there (so the
100 MB base is uploaded once), `POST /api/blobs/sha256:<hex>` uploads it, and `POST /api/create`
builds a model from `files` (the base GGUF) and `adapters` (the LoRA GGUF) with a template and
parameters. Ollama's handling of adapters differs across versions; when it refuses, its own
error text is shown verbatim.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core import adapters
from core.errors import AppError, ModelError, ServerRefusedError
from core.files import now_iso
from core.finetune.merge import MergedType
from core.finetune.parity import CONTROL_QUESTIONS
from core.prompts import COMPLETION_STOPS
from core.servers.ollama import REGISTER_TIMEOUT, OllamaServer

log = logging.getLogger(__name__)

SMOLLM_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@dataclass(frozen=True)
class Registration:
    model: str
    host: str
    uploaded: list[str]  # blobs sent (those Ollama already had are skipped)
    adapter: adapters.Adapter  # with the registration in its manifest
    route: str = "adapter"  # or "merged": Ollama refused the adapter, so it got the LoRA merged into the base


def ollama_name(adapter: adapters.Adapter) -> str:
    base = re.sub(r"[^a-z0-9._-]+", "-", adapter.manifest.base.name.lower()).strip("-")
    return f"{base}-{adapter.name}"


# A pre-trained base (Gemma 3 270M) has no chat template: the app sends it one user message that is already the
# completion-form text (`PromptTemplate.render_completion`), which Ollama passes on as it is.
COMPLETION_TEMPLATE = '{{- range .Messages }}{{ if eq .Role "user" }}{{ .Content }}{{ end }}{{ end }}'


def completion_form(chat_template: str) -> bool:
    """A base without a chat template (Gemma 3 270M): prompted, trained and served in completion form."""
    return not chat_template.strip()


def template_for(chat_template: str) -> str:
    """The base's Jinja chat template in Ollama's Go template syntax (ChatML models only).

    Same turns, the assistant's turn opened at the end, and, as SmolLM2's template does, its
    default system prompt when the conversation starts without one. A base without a chat template
    gets `COMPLETION_TEMPLATE`.
    """
    if completion_form(chat_template):
        return COMPLETION_TEMPLATE
    if "<|im_start|>" not in chat_template:
        raise ModelError(
            "Only ChatML chat templates (<|im_start|>…) can be translated for Ollama; this base uses another one."
        )
    default_system = ""
    if SMOLLM_DEFAULT_SYSTEM in chat_template:
        default_system = (
            '{{- if and (eq $i 0) (ne .Role "system") }}<|im_start|>system\n'
            f"{SMOLLM_DEFAULT_SYSTEM}<|im_end|>\n{{{{ end }}}}"
        )
    return (
        "{{- range $i, $_ := .Messages }}"
        + default_system
        + "<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
    )


Progress = Callable[[str, float], None]


def register(
    adapter: adapters.Adapter,
    base_path: Path,
    chat_template: str,
    host: str,
    *,
    timeout: float = REGISTER_TIMEOUT,
    on_progress: Progress | None = None,
    merged_type: MergedType = "Q8_0",
) -> Registration:
    """Upload the base and the adapter as blobs (unless Ollama has them), create the model, check it is listed.

    The adapter route comes first. When Ollama refuses it (since v0.34.1 Ollama creates no model from a
    base plus an adapter), the adapter is merged into the base (`core.finetune.merge`, one full GGUF, its
    size said), checked against llama.cpp + adapter on the parity prompts, uploaded and created from `files`.

    Args:
        on_progress: called with what is happening and the share done (0 to 1), uploads byte by byte.

    Raises:
        ModelUnavailableError: Ollama cannot be reached.
        ModelError: Ollama refused (its error text verbatim), or the model is not listed after creation.
    """

    def progress(message: str, done: float) -> None:
        if on_progress is not None:
            on_progress(message, round(min(1.0, done), 4))

    name = ollama_name(adapter)
    template = template_for(chat_template)
    completion = completion_form(chat_template)
    server = OllamaServer(host, timeout=timeout)
    system = None if completion else adapter.manifest.system or None  # the completion form has no system prompt
    stops = ["\n", *COMPLETION_STOPS] if completion else ["<|im_end|>"]  # served, it answers with one line
    refusal: str | None = None
    merged_note: str | None = None
    progress(f"Checking which files Ollama at {host} already has…", 0.0)
    files = [("base", base_path), ("adapter", adapter.path)]
    uploaded = _send(server, files, progress, 0.05, 0.85)
    digests = {path: "sha256:" + adapters.file_sha256(path) for _, path in files}
    try:
        status = _create(
            server, name, {base_path.name: digests[base_path]}, {adapters.ADAPTER_FILE: digests[adapter.path]},
            template, system, stops, progress, 0.85,
        )  # fmt: skip
    except ServerRefusedError as e:
        refusal = e.reason
        progress(f"Ollama refused the adapter ({refusal}); merging it into the base instead…", 0.86)
        merged, merged_note = _merged_model(adapter, base_path, merged_type, refusal)
        uploaded += _send(server, [(f"merged model ({merged_note})", merged)], progress, 0.9, 0.93)
        status = _create_merged(server, name, merged, template, system, stops, progress, refusal)
    _check_listed(server, name, status, progress)
    route = "adapter" if refusal is None else "merged"
    info: dict[str, object] = {"host": host, "model": name, "registered": now_iso(), "route": route}
    if completion:
        info["completion"] = True  # the catalog sends it completion-form text (`core.models`)
    if merged_note:
        info["merged"] = merged_note
    updated = adapters.update_manifest(adapter, drop=("ollama_error",), ollama=info)
    how = "base + adapter" if refusal is None else f"a merged model, {merged_note}: Ollama refused the adapter"
    progress(f"Registered {name} with Ollama ({how}).", 1.0)
    log.info("Registered %s with Ollama at %s as %s (uploaded: %s)", name, host, route, uploaded or "nothing")
    return Registration(name, host, uploaded, updated, route)


def _create_merged(
    server: OllamaServer,
    name: str,
    merged: Path,
    template: str,
    system: str | None,
    stops: list[str],
    progress: Progress,
    refusal: str,
) -> str:
    """Create the model from the merged GGUF alone, after Ollama refused the adapter (`refusal`)."""
    files_only = {merged.name: "sha256:" + adapters.file_sha256(merged)}
    try:
        return _create(server, name, files_only, None, template, system, stops, progress, 0.94)
    except ServerRefusedError as again:
        raise ModelError(
            f"Ollama refused to create {name}: {again.reason}. It refused the adapter first ({refusal}), "
            "then the merged model."
        ) from again


def _check_listed(server: OllamaServer, name: str, status: str, progress: Progress) -> None:
    progress(f"Checking that Ollama lists {name}…", 0.95)
    listed = set(server.model_names())
    if status != "success":
        raise ModelError(f"Ollama did not finish creating {name}: {status}")
    if name not in listed and f"{name}:latest" not in listed:
        raise ModelError(f"Ollama said it created {name}, but /api/tags does not list it.")


def _send(
    server: OllamaServer, files: list[tuple[str, Path]], progress: Progress, start: float, end: float
) -> list[str]:
    """Upload the files Ollama does not have yet; returns their labels. Progress runs from `start` to `end`."""
    digests = {label: "sha256:" + adapters.file_sha256(path) for label, path in files}
    missing = [(label, path) for label, path in files if not server.has_blob(digests[label])]
    total = sum(path.stat().st_size for _, path in missing) or 1
    sent = 0
    for label, path in missing:
        message = f"Uploading the {label} ({path.stat().st_size / 1e6:.0f} MB)…"

        def count(n: int, message: str = message) -> None:
            nonlocal sent
            sent += n
            progress(message, start + (end - start) * sent / total)

        progress(message, start + (end - start) * sent / total)
        server.upload_blob(path, digests[label], count, f"the upload of the {label}")
    return [label for label, _ in missing]


def _create(
    server: OllamaServer,
    name: str,
    files: dict[str, str],
    adapter_files: dict[str, str] | None,
    template: str,
    system: str | None,
    stops: list[str],
    progress: Progress,
    at: float,
) -> str:
    """/api/create, streamed; returns Ollama's last status ("success" when it made the model)."""
    progress(f"Creating {name} in Ollama…", at)
    status = "no answer"
    for status in server.create(
        name,
        files=files,
        adapters=adapter_files,
        template=template,
        system=system,
        parameters={"stop": stops, "temperature": 0},
    ):
        progress(f"Ollama: {status}", at + 0.01)
    return status


def _merged_model(adapter: adapters.Adapter, base_path: Path, qtype: MergedType, refusal: str) -> tuple[Path, str]:
    """The adapter merged into its base (made once, kept in the adapter's folder), checked against the adapter.

    Returns the file and a note for the user: type, size and how many parity tokens agree.
    """
    from core.finetune import merge

    path = adapter.folder / f"merged-{qtype.lower()}.gguf"
    try:
        if not path.is_file():
            merge.merge_lora(base_path, adapter.path, path, qtype=qtype)
        parity = adapter.manifest.parity
        questions = [c.question for c in parity.cases][:3] if parity else []
        questions = questions or list(CONTROL_QUESTIONS)
        system = adapter.manifest.system
        prompts = [[*([{"role": "system", "content": system}] if system else []), {"role": "user", "content": q}]
                   for q in questions]  # fmt: skip
        results = merge.parity(base_path, adapter.path, path, prompts)
    except AppError as e:
        raise ModelError(
            f"Ollama refused to create {ollama_name(adapter)}: {refusal}. Merging the adapter into the base "
            f"instead failed: {e}"
        ) from e
    agree, compared = sum(a for a, _ in results), sum(c for _, c in results)
    return path, f"{qtype}, {path.stat().st_size / 1e6:.0f} MB, {agree}/{compared} parity tokens agree with the adapter"
