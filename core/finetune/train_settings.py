"""What a LoRA training run is asked to do: its settings, checked, and the precision of its matrix products."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import TrainingError


@dataclass(frozen=True)
class TrainSettings:
    """LoRA settings with defaults sized for a 135M model on a 2-core CPU.

    Rank 16 on every linear projection trains 4.9M of 135M weights. On the 40 sample facts,
    6 epochs gave 9 of 10 trained answers word for word this way, against 6 of 10 with the
    attention projections only (161 vs 197 tokens/s). A high learning rate suits a small adapter
    learning a few dozen facts in a few epochs.
    """

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    learning_rate: float = 2e-3
    # 6 epochs (float32, 80 replayed twice): 82% of the sample facts' questions right, 7 control-set points
    # forgotten. With bfloat16, 5 epochs forgot 3 (82% right) and 6 epochs 10 (bench/finetune.py --sweep).
    epochs: int = 6
    max_steps: int = 0  # 0: run `epochs` epochs
    batch_size: int = 4
    max_length: int = 256
    validation_fraction: float = 0.1
    seed: int = 0
    # General questions answered by the base itself, trained on alongside the run's own examples (core.finetune.replay)
    replay: int = 80
    # How many times each replayed example is seen in the whole run, spread evenly over the epochs (at most
    # `epochs`). On the 40 sample facts (6 epochs, bench/finetune.py --sweep), control-set points forgotten and
    # training tokens: none 62 (11,802), once 24 (16,457), twice 7 (21,112): twice is the fewest passes within the
    # 10-point bound, at about half the tokens of every epoch (39,732). LoRA on the top 15 layers only forgot
    # more at the same replay (28 once, 14 twice). With 5 epochs and bfloat16: twice 3, three times 7 (23,800).
    replay_passes: int = 2
    # LoRA on the last `top_layers` decoder layers only (0: every layer). The layers below hold no trainable
    # weight, so the backward pass stops where the adapted layers begin.
    top_layers: int = 0
    # The precision of the matrix products in training: "bfloat16" autocasts them (the LoRA weights, the optimizer
    # and the loss stay float32), "auto" does so where the processor computes bfloat16 natively (avx512_bf16 or
    # AMX on x86, a CUDA GPU that supports it). On a 2-core EPYC with avx512_bf16: 1.8x the tokens/s of float32
    # (410 vs 223 on 20 steps), but its adapters agreed less with llama.cpp in the parity check (a top-2-layer
    # run: 6 of 8 leading tokens, 3/5 prompts on the sample facts), so float32 stays the default.
    precision: str = "float32"

    def validate(self) -> None:
        problems = []
        if self.rank < 1 or self.alpha <= 0:
            problems.append("rank and alpha must be positive")
        if not self.target_modules:
            problems.append("pick at least one target module")
        if not 0 < self.learning_rate < 1:
            problems.append("the learning rate must be between 0 and 1")
        if self.epochs < 1 and self.max_steps < 1:
            problems.append("set epochs or max steps to at least 1")
        if self.batch_size < 1 or self.max_length < 16:
            problems.append("the batch size must be at least 1 and the maximum length at least 16")
        if self.replay < 0:
            problems.append("the number of general examples cannot be negative")
        if self.top_layers < 0:
            problems.append("the number of adapted layers cannot be negative")
        if self.precision not in PRECISIONS:
            problems.append(f"the precision must be one of {', '.join(PRECISIONS)}")
        if self.replay_passes < 1:
            problems.append("each general example must be replayed at least once")
        if not 0 <= self.dropout < 1 or not 0 <= self.validation_fraction < 0.5:
            problems.append("dropout must be in [0, 1) and the validation fraction in [0, 0.5)")
        if problems:
            raise TrainingError("Training settings: " + "; ".join(problems) + ".")


PRECISIONS = ("auto", "float32", "bfloat16")


@functools.cache
def native_bf16() -> bool:
    """Whether this machine multiplies bfloat16 matrices natively (else autocasting them only slows training)."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(precision: str) -> Any:
    """The dtype training autocasts its matrix products to, or None for float32 throughout."""
    import torch

    if precision == "bfloat16" or (precision == "auto" and native_bf16()):
        return torch.bfloat16
    return None
