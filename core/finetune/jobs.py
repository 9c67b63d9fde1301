"""One fine-tuning run end to end: train, export, check parity, register; in a background thread.

`run_training` is the whole pipeline as a plain function; `TrainingJob` runs it in a thread and
keeps a snapshot the page polls. Only a finished run publishes its folder, so a cancel or a
failure at any point leaves no adapter registered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from core.background import BackgroundJob, JobBoard
from core.errors import AdapterError, AppError, TrainingCancelled, TrainingError
from core.files import data_dir_error, now_iso
from core.finetune import adapters, export, parity, replay, serving, trainer
from core.finetune.datasets import Pair, content_hash, split, write_pairs
from core.finetune.examples import Example, Rendered, split_like, write_examples
from core.finetune.trainer import Step, TrainSettings
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


def _run_training(
    data_dir: Path,
    request: TrainRequest,
    *,
    on_phase: Callable[[Phase, str], None] | None,
    on_step: Callable[[Step], None] | None,
    cancel: CancelFlag | None,
) -> adapters.Adapter:
    def phase(p: Phase, message: str) -> None:
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled()
        if on_phase is not None:
            on_phase(p, message)

    adapters.check_name(request.name)
    if adapters.exists(data_dir, request.name):
        raise AdapterError(f"A fine-tuned model named {request.name!r} already exists; pick another name.")
    request.settings.validate()
    started = time.perf_counter()
    train_pairs, val_pairs = request.split()
    replayed: list[Example] = []
    if request.settings.replay:
        phase("loading", f"Asking {request.base_name} {request.settings.replay} general questions to replay, "
                         "so the new model keeps its answers (limits forgetting)…")  # fmt: skip
        cache = replay.cache_file(data_dir, request.base_path)
        replayed = list(replay.examples(request.base_path, request.settings.replay, request.system, cache))
    phase("loading", f"Loading {request.base_name} for training (dequantizing the GGUF)…")
    trainer.load_base(request.base_path)
    what = "examples" if request.examples else "pairs"
    also = f" and {len(replayed)} general examples" if replayed else ""
    phase("training", f"Training on {len(train_pairs)} {what}{also}, validating on {len(val_pairs)}…")
    own = len(train_pairs)
    trained = trainer.train(
        request.base_path,
        train_pairs,
        val_pairs,
        request.settings,
        system=request.system,
        on_step=on_step,
        cancel=cancel,
        replayed=replayed,
    )
    train_pairs = train_pairs + replayed  # written out with the adapter: everything it was trained on
    stage = adapters.staging(data_dir, request.name)
    try:
        phase("exporting", "Writing the adapter as a GGUF LoRA…")
        n_tensors = export.write_gguf_lora(
            trained.model, stage / adapters.ADAPTER_FILE, alpha=request.settings.alpha, name=request.name
        )
        serving.write_peft(trained.model, stage / serving.PEFT_FOLDER)  # the form vLLM serves
        if request.examples or replayed:
            write_examples(stage / "train.jsonl", train_pairs, request.system)
            write_examples(stage / "validation.jsonl", val_pairs, request.system)
        else:
            write_pairs(stage / "train.jsonl", [p for p in train_pairs if isinstance(p, Pair)])
            write_pairs(stage / "validation.jsonl", [p for p in val_pairs if isinstance(p, Pair)])
        phase("checking", "Checking that llama.cpp with the adapter answers like the trained model…")
        trained_on = train_pairs[: min(3, own)]  # the run's own examples, not the replayed ones
        probes = [("trained", p.question) for p in trained_on] + [("control", q) for q in parity.CONTROL_QUESTIONS]
        cases = parity.check(
            trained, request.base_path, stage / adapters.ADAPTER_FILE, probes, system=request.system, cancel=cancel
        )
        phase("checking", "Registering the model…")
        manifest = {
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
                "train": own,
                "validation": len(val_pairs),
            },
            "replay": {
                "examples": len(replayed),
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
            "total_seconds": round(time.perf_counter() - started, 2),
            "parity": {"summary": parity.summary(cases), "cases": [asdict(c) for c in cases]},
        }
        if request.mode is not None:
            manifest["mode"] = request.mode
        adapter = adapters.publish(data_dir, stage, request.name, manifest)
    finally:
        if stage.exists():
            adapters.discard(stage)
    if request.ollama_host:
        if on_phase is not None:
            on_phase("registering", f"Registering {request.name} with Ollama at {request.ollama_host}…")
        adapter = register_with_ollama(adapter, request, trained.tokenizer.chat_template)
    return adapter


def register_with_ollama(adapter: adapters.Adapter, request: TrainRequest, chat_template: str) -> adapters.Adapter:
    """Best effort: the model is trained and served in-process whatever Ollama says; why it failed is kept."""
    from core.finetune import ollama_register

    assert request.ollama_host is not None
    try:
        return ollama_register.register(adapter, request.base_path, chat_template, request.ollama_host).adapter
    except AppError as e:
        log.info("Not registered with Ollama: %s", e)
        return adapters.update_manifest(adapter, ollama_error=str(e))


@dataclass
class JobView:
    """A consistent copy of a job's state for the page to draw."""

    request: TrainRequest
    phase: Phase
    message: str
    steps: list[Step]
    started: float
    finished: float | None
    adapter: str | None

    @property
    def running(self) -> bool:
        return self.phase not in {"done", "failed", "cancelled"}

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.time()) - self.started


@dataclass
class TrainingJob(BackgroundJob[JobView]):
    """A run in a background thread; `view()` is safe to call from any session.

    It belongs to the session that started it (`owner`, an opaque session id): every session
    sees it, only the owner stops it, or another session that explicitly confirms (`force`).
    """

    CRASHED = "Training failed"

    data_dir: Path
    request: TrainRequest
    owner: str = ""

    def __post_init__(self) -> None:
        self._view = JobView(self.request, "queued", "Starting…", [], time.time(), None, None)

    def _thread_name(self) -> str:
        return f"train-{self.request.name}"

    def _snapshot(self, view: JobView) -> JobView:
        return replace(view, steps=list(view.steps))

    def is_owner(self, session: str) -> bool:
        return session == self.owner

    def cancel(self, by: str = "", *, force: bool = False) -> None:
        """Stop after the current step.

        Raises:
            TrainingError: `by` is not the session that started the run and `force` is off.
        """
        if not force and not self.is_owner(by):
            raise TrainingError(
                f"{self.request.name} was started in another session; confirm that you want to stop it anyway."
            )
        self.cancel_flag.set()
        self._update(message="Stopping after the current step…")

    def _work(self) -> dict[str, Any]:
        adapter = run_training(
            self.data_dir,
            self.request,
            on_phase=lambda p, m: self._update(phase=p, message=m),
            on_step=lambda step: self._append(lambda v: v.steps, step),
            cancel=self.cancel_flag,
        )
        # Whether Ollama has it too is on the model's card, read from its manifest.
        return {"phase": "done", "message": f"{adapter.name} is ready.", "adapter": adapter.name}


_cleaned: set[Path] = set()
_cleaned_lock = threading.Lock()


def _clean_once(data_dir: Path) -> None:
    """At the first look at a DATA_DIR in this process: remove staging folders that killed processes left."""
    with _cleaned_lock:
        if data_dir not in _cleaned:
            _cleaned.add(data_dir)
            adapters.clean_leftovers(data_dir)


def start_training(board: JobBoard, data_dir: Path, request: TrainRequest, owner: str = "") -> TrainingJob:
    """Start a training run owned by the session `owner` on the process's board.

    Raises:
        BusyError: a heavy job (training, an evaluation, rounds) is still running.
    """
    _clean_once(data_dir)
    return board.start("training", TrainingJob(data_dir, request, owner), label=request.name, data_dir=data_dir)


def latest_training(board: JobBoard, data_dir: Path) -> TrainingJob | None:
    """The newest training run for this DATA_DIR, running or not."""
    _clean_once(data_dir)
    job: TrainingJob | None = board.latest("training", data_dir)
    return job


@dataclass(frozen=True)
class RegistrationView:
    """Where an Ollama registration stands: what it is doing, the share done, and how it ended."""

    message: str
    fraction: float
    done: bool = False
    model: str | None = None  # the Ollama model name once registered
    error: str | None = None


class RegistrationJob:
    """`ollama_register.register` in a background thread, so a page polls its progress instead of blocking."""

    def __init__(self, adapter: adapters.Adapter, base_path: Path, chat_template: str, host: str) -> None:
        self.adapter = adapter
        self._args = (adapter, base_path, chat_template, host)
        self._lock = threading.Lock()
        self._view = RegistrationView(f"Registering {adapter.name} with Ollama at {host}…", 0.0)
        self._thread = threading.Thread(target=self._run, name=f"ollama-{adapter.name}", daemon=True)

    def start(self) -> RegistrationJob:
        self._thread.start()
        return self

    def view(self) -> RegistrationView:
        with self._lock:
            return self._view

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _set(self, view: RegistrationView) -> None:
        with self._lock:
            self._view = view

    def _run(self) -> None:
        from core.finetune import ollama_register

        try:
            result = ollama_register.register(
                *self._args, on_progress=lambda message, share: self._set(RegistrationView(message, share))
            )
            self.adapter = result.adapter
            sent = f" (uploaded: {', '.join(result.uploaded)})" if result.uploaded else " (Ollama had both files)"
            self._set(RegistrationView(f"Registered as {result.model}{sent}.", 1.0, True, result.model))
        except AppError as e:
            self._set(RegistrationView(str(e), self.view().fraction, True, error=str(e)))
        except Exception as e:  # noqa: BLE001 - a crash in the thread must reach the page, not vanish
            log.exception("Registering %s with Ollama crashed", self.adapter.name)
            self._set(RegistrationView(f"Registration failed: {e}", self.view().fraction, True, error=str(e)))
