"""A random LoRA adapter for the bundled SmolLM2, written straight as a GGUF LoRA (no torch, no training)."""

from __future__ import annotations

from pathlib import Path

# SmolLM2-135M: 30 layers, hidden size 576, 3 key/value heads of 64.
SHAPES = {"attn_q": (576, 576), "attn_v": (192, 576)}


def write_random_lora(path: Path, *, rank: int = 4, alpha: float = 8.0, std: float = 0.1, seed: int = 0) -> Path:
    """q and v of every layer, A and B drawn at random: enough to change the model's greedy answers."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name(path.stem)
    for layer in range(30):
        for kind, (out, inp) in SHAPES.items():
            name = f"blk.{layer}.{kind}.weight"
            writer.add_tensor(f"{name}.lora_a", rng.normal(0, std, (rank, inp)).astype(np.float32))
            writer.add_tensor(f"{name}.lora_b", rng.normal(0, std, (out, rank)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
