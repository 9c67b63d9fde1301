"""The trained adapter as a GGUF LoRA that llama.cpp (and Ollama) load on the unchanged base.

Tensor names come from the `gguf` package's name map for the base's architecture
(`model.layers.3.self_attn.q_proj` -> `blk.3.attn_q`), suffixed `.weight.lora_a` / `.weight.lora_b`.
llama.cpp's converter permutes the rows of Llama's q and k projections (its rotary layout
differs from Hugging Face's) and transformers un-permutes them when it loads a GGUF, so the
B matrices of q and k, which carry the output rows, get the same permutation on the way back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.errors import ExportError

_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")


def llama_permute(weights: Any, n_head: int, n_head_kv: int | None = None) -> Any:
    """llama.cpp's row permutation of q/k projection weights (as in its convert_hf_to_gguf.py)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    shape = weights.shape
    return weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def lora_tensors(model: Any) -> dict[str, Any]:
    """GGUF tensor name -> float32 numpy array, for every LoRA A and B in the PEFT model."""
    import gguf
    from peft import get_peft_model_state_dict

    config = model.base_model.model.config
    arch_name = gguf_arch(config)
    arch = next((a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch_name), None)
    if arch is None:
        raise ExportError(f"The gguf package has no tensor map for the {arch_name!r} architecture.")
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    out: dict[str, Any] = {}
    for key, tensor in get_peft_model_state_dict(model, save_embedding_layers=False).items():
        match = _LORA_KEY.match(key)
        if not match:
            raise ExportError(f"Unexpected tensor {key!r} in the adapter; only LoRA A/B weights can be exported.")
        module, ab = match["module"], match["ab"]
        base_name = names.get_name(module)
        if base_name is None:
            raise ExportError(f"The gguf tensor map has no name for {module!r}.")
        array = tensor.detach().float().cpu().numpy()
        if ab == "B" and module.endswith("q_proj") and arch_name == "llama":
            array = llama_permute(array, n_head, n_head)
        elif ab == "B" and module.endswith("k_proj") and arch_name == "llama":
            array = llama_permute(array, n_head, n_kv)
        out[f"{base_name}.weight.lora_{ab.lower()}"] = array
    if not out:
        raise ExportError("The model has no LoRA weights to export.")
    return out


def gguf_arch(config: Any) -> str:
    """The GGUF architecture name of a transformers config.

    transformers reads Gemma 3's text-only GGUF as "gemma3_text", which llama.cpp calls "gemma3".
    """
    name = str(config.model_type)
    return {"gemma3_text": "gemma3"}.get(name, name)


def write_gguf_lora(model: Any, path: Path, *, alpha: float, name: str) -> int:
    """Write the adapter; returns the number of tensors. The caller renames it into place."""
    import gguf

    config = model.base_model.model.config
    tensors = lora_tensors(model)
    writer = gguf.GGUFWriter(str(path), gguf_arch(config))
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    writer.add_name(name)
    for tensor_name, array in tensors.items():
        writer.add_tensor(tensor_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return len(tensors)
