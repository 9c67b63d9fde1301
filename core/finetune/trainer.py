"""LoRA training on the embedded GGUF base: transformers dequantizes it, peft adds the adapter.

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
from core.finetune.examples import Example
from core.progress import CancelFlag

log = logging.getLogger(__name__)

IGNORE = -100


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


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]


def prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Prompt tokens as serving builds them: the chat template with the assistant's turn opened."""
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def pad_id(tokenizer: Any) -> int:
    return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)


def encode(tokenizer: Any, example: Example, system: str | None) -> Encoded:
    """The prompt's tokens, then the answer's and the end of turn; the loss counts only the latter.

    The prompt and the answer are tokenized apart, as llama.cpp sees them: the prompt is
    tokenized, and the answer is what the model generates after it.
    """
    prompt = prompt_ids(tokenizer, example.prompt_messages(system))
    answer_ids = tokenizer(example.answer, add_special_tokens=False)["input_ids"] + [end_of_turn(tokenizer)]
    return Encoded(prompt + answer_ids, [IGNORE] * len(prompt) + answer_ids)


def end_of_turn(tokenizer: Any) -> int:
    """The token that ends an assistant turn: <|im_end|> for ChatML models, else EOS."""
    token = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return int(token if isinstance(token, int) and token != tokenizer.unk_token_id else tokenizer.eos_token_id)


def collator(tokenizer: Any) -> Callable[[Sequence[Encoded]], dict[str, Any]]:
    """Batches padded by DataCollatorForSeq2Seq: on the right, labels with IGNORE, with an attention mask."""
    from transformers import DataCollatorForSeq2Seq

    pad = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE, return_tensors="pt")

    def collate(batch: Sequence[Encoded]) -> dict[str, Any]:
        return dict(pad([{"input_ids": e.input_ids, "labels": e.labels} for e in batch]))

    return collate


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


GROUP = 8  # batches per group sorted by length


def batches(data: Sequence[Encoded], size: int, rng: random.Random) -> list[list[Encoded]]:
    """An epoch's batches, shuffled, each of examples of similar length (as `group_by_length` does).

    Short replayed questions batched with 400-token RAG prompts would be padded to their length:
    sorting each group of `GROUP` batches by length first cost a joint run with replay about a
    third of the time it took otherwise.
    """
    order = list(data)
    rng.shuffle(order)
    out: list[list[Encoded]] = []
    for start in range(0, len(order), size * GROUP):
        group = sorted(order[start : start + size * GROUP], key=lambda e: len(e.input_ids))
        out += [group[i : i + size] for i in range(0, len(group), size)]
    rng.shuffle(out)
    return out


def epoch_slices(replayed: Sequence[Encoded], epochs: int, passes: int) -> list[list[Encoded]]:
    """The replayed examples each epoch adds: `passes` copies of them cut into `epochs` even slices.

    With as many passes as epochs every epoch replays all of them (each one `epochs` times); with one
    pass each is seen once, a different slice each epoch, so the base's answers are kept all along
    the run at a fraction of the tokens.
    """
    epochs = max(1, epochs)
    sequence = list(replayed) * min(max(1, passes), epochs)
    return [sequence[len(sequence) * e // epochs : len(sequence) * (e + 1) // epochs] for e in range(epochs)]


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
    train_data = [encode(tokenizer, p, system) for p in train_pairs]
    val_data = [encode(tokenizer, p, system) for p in val_pairs]
    replay_data = [encode(tokenizer, p, system) for p in replayed]
    rows = train_data + val_data + replay_data
    too_long = [i + 1 for i, e in enumerate(rows) if len(e.input_ids) > settings.max_length]
    if too_long:
        raise TrainingError(
            f"Rows {too_long[:10]} are longer than the maximum length of {settings.max_length} tokens; "
            "shorten them or raise the maximum length."
        )
    collate = collator(tokenizer)

    model = lora_model(base, settings).to(device())
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    slices = epoch_slices(replay_data, settings.epochs, settings.replay_passes)
    epoch_steps = [math.ceil((len(train_data) + len(extra)) / settings.batch_size) for extra in slices]
    total = settings.max_steps or sum(epoch_steps)
    scheduler = scheduler_for(optimizer, total)
    rng = random.Random(settings.seed)
    dtype = autocast_dtype(settings.precision)

    result = Trained(model=model, tokenizer=tokenizer)
    started = time.perf_counter()
    eval_s = 0.0
    step = 0
    epoch = 0
    while step < total:
        extra = slices[epoch % len(slices)]
        per_epoch = epoch_steps[epoch % len(slices)]
        for position, batch_items in enumerate(batches(train_data + extra, settings.batch_size, rng), start=1):
            if cancel is not None and cancel.is_set():
                raise TrainingCancelled()
            batch = {k: v.to(model.device) for k, v in collate(batch_items).items()}
            loss = answer_loss(model, batch, dtype)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            result.train_tokens += int(batch["attention_mask"].sum())
            result.train_seconds = time.perf_counter() - started - eval_s
            val_loss = None
            if val_data and (position == per_epoch or step == total):
                eval_started = time.perf_counter()
                val_loss = evaluate(model, val_data, collate, settings.batch_size, dtype)
                eval_s += time.perf_counter() - eval_started
            report = Step(
                step=step,
                total_steps=total,
                epoch=epoch + position / per_epoch,
                loss=float(loss.detach()),
                val_loss=val_loss,
                tokens=result.train_tokens,
                elapsed_s=time.perf_counter() - started,
            )
            result.steps.append(report)
            if on_step is not None:
                on_step(report)
            if step >= total:
                break
        epoch += 1
    model.eval()
    return result


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
