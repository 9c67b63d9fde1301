"""LoRA training on the embedded GGUF base: transformers dequantizes it, peft adds the adapter (the loop).

A plain loop (no `Trainer`): one forward/backward per batch, AdamW on the LoRA weights only,
loss on the answer tokens only. Each example is the base model's own chat template applied to
its prompt, exactly as llama.cpp formats it when serving, followed by the answer and the
end-of-turn token, so the model learns to stop where serving stops. The prompt is (system,
question) for a `Pair`, or the messages a `Rendered` example carries (a RAG template filled with
retrieved chunks, for retrieval-aware training).
"""

from __future__ import annotations

import copy
import functools
import gc
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import cpu_threads
from core.errors import TrainingCancelled, TrainingError
from core.finetune.encoding import IGNORE, Encoded, batches, collator, encode, epoch_slices, prompt_ids
from core.finetune.examples import Example
from core.finetune.train_settings import TrainSettings, autocast_dtype
from core.progress import CancelFlag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """What the trainer reports after each optimizer step."""

    step: int
    total_steps: int
    epoch: float
    loss: float
    val_loss: float | None
    tokens: int
    elapsed_s: float

    @property
    def eta_s(self) -> float:
        return self.elapsed_s / self.step * (self.total_steps - self.step) if self.step else 0.0


@dataclass
class Trained:
    """The trained PEFT model, still in memory, and its history."""

    model: Any
    tokenizer: Any
    steps: list[Step] = field(default_factory=list)
    train_tokens: int = 0
    train_seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.train_seconds if self.train_seconds else 0.0


_bases: dict[Path, tuple[Any, Any]] = {}
_bases_lock = threading.Lock()


def release_base() -> None:
    """Drop the cached float32 base (the next run loads it again)."""
    with _bases_lock:
        _bases.clear()
    gc.collect()


@contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """While transformers loads a GGUF: one parse of the file, one tensor-name map.

    transformers 5.23 parses the whole GGUF three times (for the tokenizer, the config and the weights;
    about 4 s each for SmolLM2, most of it its 49k-token vocabulary) and rebuilds gguf's tensor-name
    map once per module (397 times, 7 s). Both are looked up on the `gguf` module at call time, so
    here they are served from a cache, and restored afterwards: loading SmolLM2-135M 17 s -> 6 s.
    """
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[str, str], Any] = {}

    def parsed(path: os.PathLike[str] | str, mode: str = "r") -> Any:
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = reader(path, mode)  # type: ignore[arg-type]
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = parsed, functools.cache(name_map)  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map  # type: ignore[misc]


def load_base(path: Path) -> tuple[Any, Any]:
    """The GGUF as a float32 transformers model and its tokenizer, loaded once per process.

    transformers reads the GGUF's tensors and dequantizes them (Q4_1 here); callers must copy
    the model before changing it.
    """
    with _bases_lock:
        if path not in _bases:
            _bases.clear()  # one float32 base at a time (540 MB for SmolLM2-135M): a new base replaces it
            try:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError as e:
                raise TrainingError("torch/transformers are not installed; run `make run` to install them.") from e
            started = time.perf_counter()
            try:
                with _gguf_parsed_once():
                    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
                    model = AutoModelForCausalLM.from_pretrained(
                        path.parent, gguf_file=path.name, dtype=torch.float32, local_files_only=True
                    )
            except (ValueError, OSError, KeyError, RuntimeError) as e:
                raise TrainingError(
                    f"transformers cannot load {path.name} for training ({e}); fine-tuning needs a GGUF of a "
                    "supported architecture such as Llama."
                ) from e
            model.eval()  # type: ignore[no-untyped-call]
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            tokenizer.padding_side = "right"  # positions as serving sees them; the collator pads after the text
            log.info("Loaded %s for training in %.1f s", path.name, time.perf_counter() - started)
            _bases[path] = (model, tokenizer)
        return _bases[path]


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def lora_model(base: Any, settings: TrainSettings) -> Any:
    """A copy of the base with fresh LoRA weights (the cached base stays untouched)."""
    from peft import LoraConfig, get_peft_model

    layers = int(base.config.num_hidden_layers)
    top = min(settings.top_layers, layers) or layers
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        layers_to_transform=list(range(layers - top, layers)) if top < layers else None,
        layers_pattern="layers" if top < layers else None,
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(copy.deepcopy(base), config)
    except ValueError as e:
        raise TrainingError(f"LoRA cannot target {', '.join(settings.target_modules)}: {e}") from e


def scheduler_for(optimizer: Any, total: int) -> Any:
    """Linear warm-up over the first 10% of steps, then cosine decay to 10% of the peak (transformers')."""
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    return get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=total // 10, num_training_steps=total, min_lr_rate=0.1
    )


def answer_loss(model: Any, batch: dict[str, Any], dtype: Any = None) -> Any:
    """Mean cross-entropy over the answer tokens, with the vocabulary projection computed for those alone.

    The same loss as `model(**batch).loss`, which projects every position onto the 49k-token
    vocabulary and then ignores the prompt's: here about 10 of 55 tokens of a sample fact are
    answer tokens, so most of the projection (and its gradient) was work thrown away. `dtype`
    autocasts the matrix products (`autocast_dtype`).
    """
    import torch

    causal_lm = model.get_base_model()
    with torch.autocast(batch["input_ids"].device.type, dtype=dtype, enabled=dtype is not None):
        hidden = causal_lm.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        labels = batch["labels"][:, 1:]
        keep = labels != IGNORE
        logits = causal_lm.get_output_embeddings()(hidden.last_hidden_state[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), labels[keep])


def evaluate(
    model: Any,
    data: Sequence[Encoded],
    collate: Callable[[Sequence[Encoded]], dict[str, Any]],
    batch_size: int,
    dtype: Any = None,
) -> float:
    """Mean loss per answer token."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            batch = {k: v.to(model.device) for k, v in collate(data[i : i + batch_size]).items()}
            n = int((batch["labels"][:, 1:] != IGNORE).sum())
            total += float(answer_loss(model, batch, dtype)) * n
            count += n
    model.train()
    return total / max(1, count)


def train(
    base_path: Path,
    train_pairs: Sequence[Example],
    val_pairs: Sequence[Example],
    settings: TrainSettings,
    *,
    system: str | None = None,
    on_step: Callable[[Step], None] | None = None,
    cancel: CancelFlag | None = None,
    replayed: Sequence[Example] = (),
) -> Trained:
    """Train a LoRA adapter on the examples (pairs or rendered prompts); `on_step` after each step.

    `replayed` (general examples, `core.finetune.replay`) are spread over the epochs as
    `settings.replay_passes` says; `cancel` is checked between steps.

    Raises:
        TrainingCancelled: `cancel` was set (the model is discarded).
        TrainingError: bad settings, an example over `max_length`, or no data.
    """
    settings.validate()
    if not train_pairs:
        raise TrainingError("There is nothing to train on; the dataset has no training pairs.")
    from core.engine import retire_llama_thread

    retire_llama_thread()  # its idle OpenMP team would halve torch's speed here (see there)
    with torch_threads(cpu_threads()):
        return _train(
            base_path,
            train_pairs,
            val_pairs,
            settings,
            system=system,
            on_step=on_step,
            cancel=cancel,
            replayed=replayed,
        )


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Use `n` torch threads for this thread's work, then give the process its previous setting back.

    `torch.set_num_threads` is process-wide: left set, it would size every later torch call in the
    server (embeddings in other sessions among them) for a training run long finished.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(
    base_path: Path,
    train_pairs: Sequence[Example],
    val_pairs: Sequence[Example],
    settings: TrainSettings,
    *,
    system: str | None,
    on_step: Callable[[Step], None] | None,
    cancel: CancelFlag | None,
    replayed: Sequence[Example],
) -> Trained:
    import torch

    torch.manual_seed(settings.seed)
    base, tokenizer = load_base(base_path)
    train_data, val_data, replay_data = (
        [encode(tokenizer, p, system) for p in rows] for rows in (train_pairs, val_pairs, replayed)
    )
    too_long = [
        i + 1 for i, e in enumerate(train_data + val_data + replay_data) if len(e.input_ids) > settings.max_length
    ]
    if too_long:
        raise TrainingError(
            f"Rows {too_long[:10]} are longer than the maximum length of {settings.max_length} tokens; "
            "shorten them or raise the maximum length."
        )
    slices = epoch_slices(replay_data, settings.epochs, settings.replay_passes)
    epoch_steps = [math.ceil((len(train_data) + len(extra)) / settings.batch_size) for extra in slices]
    loop = _Loop.start(
        lora_model(base, settings), tokenizer, settings, settings.max_steps or sum(epoch_steps), val_data
    )
    rng = random.Random(settings.seed)
    epoch = 0
    while loop.step < loop.total:
        extra, per_epoch = slices[epoch % len(slices)], epoch_steps[epoch % len(slices)]
        for position, batch_items in enumerate(batches(train_data + extra, settings.batch_size, rng), start=1):
            if cancel is not None and cancel.is_set():
                raise TrainingCancelled()
            report = loop.run_step(batch_items, epoch, position, per_epoch)
            if on_step is not None:
                on_step(report)
            if loop.step >= loop.total:
                break
        epoch += 1
    loop.model.eval()
    return loop.result


@dataclass
class _Loop:
    """The training loop's state: the model, its optimizer and schedule, the clock and the history so far."""

    model: Any
    params: list[Any]
    optimizer: Any
    scheduler: Any
    collate: Callable[[Sequence[Encoded]], dict[str, Any]]
    dtype: Any
    settings: TrainSettings
    total: int
    val_data: list[Encoded]
    result: Trained
    started: float = field(default_factory=time.perf_counter)
    eval_s: float = 0.0  # time spent on the validation loss, left out of the training speed
    step: int = 0

    @classmethod
    def start(cls, model: Any, tokenizer: Any, settings: TrainSettings, total: int, val_data: list[Encoded]) -> _Loop:
        """AdamW on the LoRA weights only, with the warm-up and cosine schedule over `total` steps."""
        import torch

        model = model.to(device())
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
        dtype = autocast_dtype(settings.precision)
        return cls(model, params, optimizer, scheduler_for(optimizer, total), collator(tokenizer), dtype, settings,
                   total, val_data, Trained(model, tokenizer))  # fmt: skip

    def run_step(self, batch_items: Sequence[Encoded], epoch: int, position: int, per_epoch: int) -> Step:
        """One forward/backward and optimizer step; the validation loss at the end of each epoch and of the run."""
        import torch

        batch = {k: v.to(self.model.device) for k, v in self.collate(batch_items).items()}
        loss = answer_loss(self.model, batch, self.dtype)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        result = self.result
        result.train_tokens += int(batch["attention_mask"].sum())
        result.train_seconds = time.perf_counter() - self.started - self.eval_s
        val_loss = None
        if self.val_data and (position == per_epoch or self.step == self.total):
            eval_started = time.perf_counter()
            val_loss = evaluate(self.model, self.val_data, self.collate, self.settings.batch_size, self.dtype)
            self.eval_s += time.perf_counter() - eval_started
        report = Step(step=self.step, total_steps=self.total, epoch=epoch + position / per_epoch,
                      loss=float(loss.detach()), val_loss=val_loss, tokens=result.train_tokens,
                      elapsed_s=time.perf_counter() - self.started)  # fmt: skip
        result.steps.append(report)
        return report


def predictions(trained: Trained, messages: list[dict[str, str]], continuation: list[int]) -> list[int]:
    """The in-memory PEFT model's greedy choice after the prompt and after each token of `continuation`.

    One forward pass over the prompt and the continuation (teacher forcing), so `len(continuation) + 1`
    choices: where they match the continuation token for token, greedy generation would have written it
    (used by the parity check, at the cost of one pass instead of one per token).
    """
    import torch

    prompt = prompt_ids(trained.tokenizer, messages)
    ids = torch.tensor([prompt + continuation], device=trained.model.device)
    with torch.no_grad():
        logits = trained.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    return [int(t) for t in logits[0, len(prompt) - 1 :].argmax(dim=-1)]
