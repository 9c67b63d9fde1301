"""One fine-tuning run end to end: request -> examples -> trainer -> export -> parity -> registry.

`run_training` is the whole pipeline as a plain function (`core.lab.training` runs it in the
background). Only a finished run publishes its folder, so a cancel or a failure at any point
leaves no adapter registered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from core import adapters
from core.errors import AdapterError, AppError, TrainingCancelled
from core.files import data_dir_error, now_iso
from core.finetune import export, parity, replay, serving, trainer
from core.finetune.datasets import Pair, content_hash, split, write_pairs
from core.finetune.examples import Example, Rendered, split_like, write_examples
from core.finetune.train_settings import TrainSettings
from core.finetune.trainer import Step, Trained
from core.progress import CancelFlag

log = logging.getLogger(__name__)

Phase = Literal["queued", "loading", "training", "exporting", "checking", "registering", "done", "failed", "cancelled"]


@dataclass(frozen=True)
class TrainRequest:
    """What the Fine-tune page asks for."""

    name: str
    dataset: str
    pairs: tuple[Pair, ...]
    base_path: Path
    base_name: str
    settings: TrainSettings = TrainSettings()
    system: str | None = None
    ollama_host: str | None = None  # also register the model there when it answers
    # Pre-rendered prompts (retrieval-aware training), one per pair, trained on instead of the plain FT prompt;
    # each follows its pair to the training or the validation side.
    examples: tuple[Rendered, ...] = ()
    mode: dict[str, Any] | None = None  # how the examples were made (core.finetune.modes), kept in the manifest

    def split(self) -> tuple[list[Example], list[Example]]:
        """The training and validation examples: the pairs themselves, or their rendered prompts."""
        train_pairs, val_pairs = split(self.pairs, self.settings.validation_fraction)
        if not self.examples:
            return list(train_pairs), list(val_pairs)
        train_examples, val_examples = split_like(self.examples, val_pairs)
        return list(train_examples), list(val_examples)


def run_training(
    data_dir: Path,
    request: TrainRequest,
    *,
    on_phase: Callable[[Phase, str], None] | None = None,
    on_step: Callable[[Step], None] | None = None,
    cancel: CancelFlag | None = None,
) -> adapters.Adapter:
    """Train, export as GGUF LoRA, check parity against llama.cpp, then publish; returns the adapter.

    Raises:
        TrainingCancelled: `cancel` was set; nothing is left on disk.
        AppError: bad name or settings, a dataset problem, an export failure, a full or read-only DATA_DIR.
    """
    try:
        return _run_training(data_dir, request, on_phase=on_phase, on_step=on_step, cancel=cancel)
    except OSError as e:  # a full disk or a read-only DATA_DIR while exporting: the staging folder is gone
        raise data_dir_error(data_dir, e) from e


PhaseCallback = Callable[[Phase, str], None]


def _run_training(
    data_dir: Path,
    request: TrainRequest,
    *,
    on_phase: PhaseCallback | None,
    on_step: Callable[[Step], None] | None,
    cancel: CancelFlag | None,
) -> adapters.Adapter:
    def phase(p: Phase, message: str) -> None:
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled()
        if on_phase is not None:
            on_phase(p, message)

    _check(data_dir, request)
    started = time.perf_counter()
    train_pairs, val_pairs = request.split()
    replayed = _replayed(data_dir, request, phase)
    phase("loading", f"Loading {request.base_name} for training (dequantizing the GGUF)…")
    trainer.load_base(request.base_path)
    what = "examples" if request.examples else "pairs"
    also = f" and {len(replayed)} general examples" if replayed else ""
    phase("training", f"Training on {len(train_pairs)} {what}{also}, validating on {len(val_pairs)}…")
    trained = trainer.train(request.base_path, train_pairs, val_pairs, request.settings, system=request.system,
                            on_step=on_step, cancel=cancel, replayed=replayed)  # fmt: skip
    run = _Run(request, trained, train_pairs, val_pairs, replayed, started)
    adapter = _publish(data_dir, run, phase, cancel)
    if request.ollama_host:
        if on_phase is not None:
            on_phase("registering", f"Registering {request.name} with Ollama at {request.ollama_host}…")
        adapter = register_with_ollama(adapter, request, trained.tokenizer.chat_template)
    return adapter


def _check(data_dir: Path, request: TrainRequest) -> None:
    adapters.check_name(request.name)
    if adapters.exists(data_dir, request.name):
        raise AdapterError(f"A fine-tuned model named {request.name!r} already exists; pick another name.")
    request.settings.validate()


def _replayed(data_dir: Path, request: TrainRequest, phase: PhaseCallback) -> list[Example]:
    """The base model's answers to general questions, trained on alongside the data (limits forgetting)."""
    if not request.settings.replay:
        return []
    phase("loading", f"Asking {request.base_name} {request.settings.replay} general questions to replay, "
                     "so the new model keeps its answers (limits forgetting)…")  # fmt: skip
    cache = replay.cache_file(data_dir, request.base_path)
    return list(replay.examples(request.base_path, request.settings.replay, request.system, cache))


@dataclass(frozen=True)
class _Run:
    """A finished training, before it is exported: what it learned from and how long it took."""

    request: TrainRequest
    trained: Trained
    own: list[Example]  # the run's own training examples
    validation: list[Example]
    replayed: list[Example]
    started: float

    @property
    def everything(self) -> list[Example]:
        """What the adapter was trained on, written out with it."""
        return self.own + self.replayed


def _publish(data_dir: Path, run: _Run, phase: PhaseCallback, cancel: CancelFlag | None) -> adapters.Adapter:
    """Export the adapter into a staging folder, check parity, then publish the folder as the registered model."""
    request = run.request
    stage = adapters.staging(data_dir, request.name)
    try:
        phase("exporting", "Writing the adapter as a GGUF LoRA…")
        n_tensors = export.write_gguf_lora(
            run.trained.model, stage / adapters.ADAPTER_FILE, alpha=request.settings.alpha, name=request.name
        )
        serving.write_peft(run.trained.model, stage / serving.PEFT_FOLDER)  # the form vLLM serves
        _write_data(stage, run)
        phase("checking", "Checking that llama.cpp with the adapter answers like the trained model…")
        trained_on = run.own[:3]  # the run's own examples, not the replayed ones
        probes = [("trained", p.question) for p in trained_on] + [("control", q) for q in parity.CONTROL_QUESTIONS]
        cases = parity.check(run.trained, request.base_path, stage / adapters.ADAPTER_FILE, probes,
                             system=request.system, cancel=cancel)  # fmt: skip
        phase("checking", "Registering the model…")
        return adapters.publish(data_dir, stage, request.name, _manifest(run, n_tensors, cases))
    finally:
        if stage.exists():
            adapters.discard(stage)


def _write_data(stage: Path, run: _Run) -> None:
    """The training and validation data beside the adapter: pairs, or chat rows when prompts were rendered."""
    request = run.request
    if request.examples or run.replayed:
        write_examples(stage / "train.jsonl", run.everything, request.system)
        write_examples(stage / "validation.jsonl", run.validation, request.system)
    else:
        write_pairs(stage / "train.jsonl", [p for p in run.everything if isinstance(p, Pair)])
        write_pairs(stage / "validation.jsonl", [p for p in run.validation if isinstance(p, Pair)])


def _manifest(run: _Run, n_tensors: int, cases: list[parity.ParityCase]) -> dict[str, Any]:
    request, trained = run.request, run.trained
    manifest: dict[str, Any] = {
        "name": request.name,
        "created": now_iso(),
        "base": {
            "name": request.base_name,
            "file": request.base_path.name,
            "sha256": adapters.file_sha256(request.base_path),
        },
        "dataset": {
            "name": request.dataset,
            "hash": content_hash(request.pairs),
            "pairs": len(request.pairs),
            "train": len(run.own),
            "validation": len(run.validation),
        },
        "replay": {
            "examples": len(run.replayed),
            "asked": request.settings.replay,
            "answered_by": f"{request.base_name} (llama.cpp, greedy, no adapter)",
            "template": "the plain FT prompt",
            "prompts": replay.PROMPTS_FILE.name,
        },
        "system": request.system,
        "settings": asdict(request.settings),
        "device": trainer.device(),
        "tensors": n_tensors,
        "losses": {
            "train": [[s.step, round(s.loss, 4)] for s in trained.steps],
            "validation": [[s.step, round(s.val_loss, 4)] for s in trained.steps if s.val_loss is not None],
        },
        "train_tokens": trained.train_tokens,
        "train_seconds": round(trained.train_seconds, 2),
        "tokens_per_s": round(trained.tokens_per_s, 1),
        "total_seconds": round(time.perf_counter() - run.started, 2),
        "parity": {"summary": parity.summary(cases), "cases": [asdict(c) for c in cases]},
    }
    if request.mode is not None:
        manifest["mode"] = request.mode
    return manifest


def register_with_ollama(adapter: adapters.Adapter, request: TrainRequest, chat_template: str) -> adapters.Adapter:
    """Best effort: the model is trained and served in-process whatever Ollama says; why it failed is kept."""
    from core.finetune import ollama_register

    assert request.ollama_host is not None
    try:
        return ollama_register.register(adapter, request.base_path, chat_template, request.ollama_host).adapter
    except AppError as e:
        log.info("Not registered with Ollama: %s", e)
        return adapters.update_manifest(adapter, ollama_error=str(e))
