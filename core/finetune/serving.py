"""A fine-tuned model in the forms other servers take: a PEFT folder for vLLM, and the command lines to serve it.

vLLM serves LoRA adapters as PEFT folders (`adapter_config.json` + `adapter_model.safetensors`) on the
Hugging Face base they name, at start (`--lora-modules`) or at run time (`POST /v1/load_lora_adapter`,
when the server runs with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True). llama.cpp's `llama-server` takes the
GGUF adapter beside the GGUF base (`--lora`).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from core.errors import ExportError

PEFT_FOLDER = "peft"
# The Hugging Face repository of the bundled GGUF's weights: what vLLM loads as the base.
BUNDLED_BASE_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct"
# The LoRA ranks vLLM accepts (`--max-lora-rank` choices).
VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def rank_warning(rank: int) -> str | None:
    """What to tell a user choosing a rank vLLM cannot serve; None when it can."""
    if rank in VLLM_RANKS:
        return None
    near = min(VLLM_RANKS, key=lambda r: abs(r - rank))
    return (
        f"vLLM serves LoRA ranks {', '.join(map(str, VLLM_RANKS))} only: rank {rank} runs here, in llama.cpp and "
        f"Ollama, but vLLM will refuse it. Pick {near} to serve it there too."
    )


def write_peft(model: Any, folder: Path, base_repo: str = BUNDLED_BASE_REPO) -> Path:
    """Save the trained PEFT model's adapter as a folder vLLM and `peft` load, naming the base it needs."""
    try:
        model.save_pretrained(str(folder), safe_serialization=True)
        config_path = folder / "adapter_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        # Trained on the GGUF dequantized in memory: name the base by its repository, not that file.
        config["base_model_name_or_path"] = base_repo
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    except (OSError, ValueError) as e:
        raise ExportError(f"Could not write the PEFT folder for vLLM in {folder}: {e}") from e
    if not (folder / "adapter_model.safetensors").is_file():
        raise ExportError(f"peft wrote no adapter_model.safetensors in {folder}; the vLLM export is incomplete.")
    return folder


def peft_config(folder: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    return config


def vllm_command(name: str, folder: Path) -> str:
    """`vllm serve` with this adapter loaded at start."""
    config = peft_config(folder)
    rank = int(config.get("r", 16))
    max_rank = next((r for r in VLLM_RANKS if r >= rank), VLLM_RANKS[-1])
    return (
        f"vllm serve {shlex.quote(str(config['base_model_name_or_path']))} --enable-lora "
        f"--max-lora-rank {max_rank} --lora-modules {shlex.quote(f'{name}={folder}')}"
    )


def load_request(name: str, folder: Path) -> dict[str, str]:
    """The body of `POST /v1/load_lora_adapter` (the folder's path as the vLLM server sees it)."""
    return {"lora_name": name, "lora_path": str(folder)}


def llama_server_command(base: Path, adapter: Path) -> str:
    """llama.cpp's `llama-server` with the GGUF adapter on its base."""
    return f"llama-server -m {shlex.quote(str(base))} --lora {shlex.quote(str(adapter))} --port 8080"
