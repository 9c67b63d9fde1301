"""A GGUF LoRA merged into its base: one full GGUF model, for servers that refuse adapters (Ollama >= 0.34.1).

Works on the two GGUF files alone, in llama.cpp's own tensor names and layout, so the merge is the
sum llama.cpp computes when it applies the adapter at run time: W' = W + (alpha / rank) * B @ A, per
target tensor. The base's metadata (tokenizer, chat template, architecture) is copied unchanged; every
2-D weight is written as F16 or Q8_0 (1-D norms stay F32, as llama.cpp's converter keeps them).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

from core.errors import ExportError

log = logging.getLogger(__name__)

MergedType = Literal["F16", "Q8_0"]
_FILE_TYPES = {"F16": 1, "Q8_0": 7}  # gguf.LlamaFileType: MOSTLY_F16, MOSTLY_Q8_0


def _read(path: Path) -> Any:
    import gguf

    try:
        return gguf.GGUFReader(str(path))
    except (ValueError, OSError) as e:
        raise ExportError(f"{path.name} cannot be read as a GGUF file ({e}); train or download it again.") from e


def _lora_deltas(adapter: Path) -> dict[str, Any]:
    """Base tensor name -> the float32 delta the adapter adds to it."""
    import gguf
    import numpy as np

    reader = _read(adapter)
    alpha_field = reader.fields.get(gguf.Keys.Adapter.LORA_ALPHA)
    if alpha_field is None:
        raise ExportError(f"{adapter.name} has no {gguf.Keys.Adapter.LORA_ALPHA}; is it a GGUF LoRA adapter?")
    alpha = float(alpha_field.contents())
    parts: dict[str, dict[str, Any]] = {}
    for t in reader.tensors:
        base_name, _, ab = t.name.rpartition(".lora_")
        if ab not in ("a", "b"):
            raise ExportError(f"Unexpected tensor {t.name!r} in {adapter.name}; only LoRA A/B pairs can be merged.")
        parts.setdefault(base_name, {})[ab] = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    deltas = {}
    for name, pair in parts.items():
        if set(pair) != {"a", "b"}:
            raise ExportError(f"{adapter.name} has only half of the LoRA pair for {name}.")
        a, b = pair["a"], pair["b"]  # numpy shapes (rank, in) and (out, rank)
        deltas[name] = (alpha / a.shape[0]) * (b @ a)
    if not deltas:
        raise ExportError(f"{adapter.name} holds no LoRA tensors to merge.")
    return deltas


def merge_lora(base: Path, adapter: Path, out: Path, *, qtype: MergedType = "Q8_0") -> int:
    """Write base + adapter as one GGUF model at `out` (atomically); returns its size in bytes.

    Raises:
        ExportError: the adapter does not fit the base, or the merged file cannot be written.
    """
    import gguf
    import numpy as np

    deltas = _lora_deltas(adapter)
    reader = _read(base)
    arch = str(reader.fields[gguf.Keys.General.ARCHITECTURE].contents())
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(str(tmp), arch)
    try:
        for field in reader.fields.values():
            if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
                continue
            if field.name == gguf.Keys.General.FILE_TYPE:
                writer.add_uint32(field.name, _FILE_TYPES[qtype])
                continue
            kind = field.types[0]
            sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
        target = gguf.GGMLQuantizationType[qtype]
        merged = set()
        for t in reader.tensors:
            name = t.name
            weights = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            if name in deltas:
                if deltas[name].shape != weights.shape:
                    raise ExportError(
                        f"The adapter's {name} is {deltas[name].shape}, the base's {weights.shape}: "
                        "it was trained on another base."
                    )
                weights = weights + deltas[name]
                merged.add(name)
            if weights.ndim == 1:
                writer.add_tensor(t.name, weights)
            else:
                # F16 goes as float16 numbers, Q8_0 as its blocks' bytes (the writer reads the shape from them).
                data = gguf.quants.quantize(weights, target)
                writer.add_tensor(t.name, data, raw_dtype=target if qtype == "Q8_0" else None)
        if missing := set(deltas) - merged:
            raise ExportError(f"The base has no tensors {sorted(missing)[:3]} the adapter changes: another base?")
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    except OSError as e:
        raise ExportError(f"Could not write the merged model {out.name}: {e}. Free some disk space and retry.") from e
    finally:
        tmp.unlink(missing_ok=True)
    size = out.stat().st_size
    log.info("Merged %s into %s: %s, %.0f MB", adapter.name, base.name, qtype, size / 1e6)
    return size


def parity(
    base: Path, adapter: Path, merged: Path, prompts: list[list[dict[str, str]]], *, n_tokens: int = 16
) -> list[tuple[int, int]]:
    """Per prompt: (leading greedy tokens the merged model and llama.cpp + adapter agree on, tokens compared)."""
    from core.engine import LoadedModel
    from core.finetune.parity import _llama_greedy

    results = []
    with_adapter = LoadedModel(base, lora_path=adapter, n_ctx=1024)
    whole = LoadedModel(merged, n_ctx=1024)
    try:
        stop_ids = {int(with_adapter.llama.token_eos())}
        for messages in prompts:
            prompt = with_adapter.format_prompt(messages)
            a = _llama_greedy(with_adapter.llama, prompt, n_tokens, stop_ids, with_adapter.completion)
            b = _llama_greedy(whole.llama, prompt, n_tokens, stop_ids, with_adapter.completion)
            agree = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            results.append((agree, max(len(a), len(b))))
    finally:
        with_adapter.close()
        whole.close()
    return results
