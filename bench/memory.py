"""Resident memory of the app's process after 10 fine-tuned models are each asked once.

Run: .venv/bin/python bench/memory.py

Makes 10 tiny LoRA adapters on the bundled SmolLM2 (rank 2 on q/v, random weights: the point is
memory, not quality) with the app's own exporter and registry, then asks each fine-tuned model one
question through `Runtime.run` (the Compare path), in a fresh process per setting: the engine's LRU
bound (the app's default) against no bound. Reports VmRSS and PSS (shared file pages counted once)
from /proc, after loading the process and after the 10 questions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, summary  # noqa: E402

N_MODELS = 10


def memory_mb() -> dict[str, float]:
    """VmRSS and PSS of this process, in MB."""
    rss = next(
        int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmRSS")
    )
    rollup = Path("/proc/self/smaps_rollup").read_text().splitlines()
    pss = next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
    return {"rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1)}


def make_adapters(data_dir: Path) -> None:
    """10 tiny adapters, exported and registered the way a training run does it (no training, no parity)."""
    import torch

    from core import adapters
    from core.files import now_iso
    from core.finetune import export, trainer
    from core.finetune.train_settings import TrainSettings
    from core.models import BUNDLED_NAME, bundled_gguf

    base, _ = trainer.load_base(bundled_gguf())
    settings = TrainSettings(rank=2, alpha=4, target_modules=("q_proj", "v_proj"))
    for n in range(N_MODELS):
        torch.manual_seed(n)
        model = trainer.lora_model(base, settings)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.01)
        name = f"tiny-{n}"
        stage = adapters.staging(data_dir, name)
        export.write_gguf_lora(model, stage / adapters.ADAPTER_FILE, alpha=settings.alpha, name=name)
        base_info = {"name": BUNDLED_NAME, "file": bundled_gguf().name, "sha256": adapters.file_sha256(bundled_gguf())}
        adapters.publish(data_dir, stage, name, {"name": name, "created": now_iso(), "base": base_info})
    trainer.release_base()


def ask_all(data_dir: Path, max_loaded: int) -> dict[str, object]:
    """In this (fresh) process: ask each fine-tuned model once; memory before and after."""
    from core.config import Settings
    from core.engine import EmbeddedEngine
    from core.models import ModelCatalog
    from core.records import Records
    from core.strategies import FT_TEMPLATE, Runtime, Strategy
    from core.template_library import TemplateLibrary

    settings = Settings.from_env(data_dir=data_dir, ollama_host=None)
    engine = EmbeddedEngine(max_loaded=max_loaded)
    catalog = ModelCatalog(settings, engine, None)
    with tempfile.TemporaryDirectory() as scratch:
        runtime = Runtime(None, TemplateLibrary(Path(scratch) / "t"), catalog, Records(Path(scratch) / "r.sqlite"))
        start = memory_mb()
        tuned = [m for m in catalog.available() if m.fine_tuned]
        assert len(tuned) == N_MODELS, tuned
        started = time.perf_counter()
        errors = 0
        for info in tuned:
            answer = runtime.run(Strategy("FT", info.id, FT_TEMPLATE, max_tokens=16), "Who are you?").answer()
            errors += answer.error is not None
        return {
            "max_loaded": max_loaded,
            "start": start,
            "after": memory_mb(),
            "loaded_now": len(engine.loaded()),
            "errors": errors,
            "seconds": round(time.perf_counter() - started, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ask", type=int, help=argparse.SUPPRESS)  # child mode: max_loaded
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--models", type=int, default=10, help="fine-tuned models to ask (4 or more)")
    args = parser.parse_args()
    global N_MODELS
    N_MODELS = max(4, args.models)  # more than the LRU keeps, or there is nothing to bound
    if args.ask is not None:
        print(json.dumps(ask_all(args.data_dir, args.ask)))
        return
    from core.engine import DEFAULT_MAX_LOADED

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        make_adapters(data_dir)
        print(
            f"{N_MODELS} fine-tuned models (tiny adapters), each asked once through Runtime.run, a fresh process each:"
        )
        growth: dict[int, float] = {}
        for max_loaded in (DEFAULT_MAX_LOADED, N_MODELS):
            out = (
                subprocess.run(
                    [sys.executable, __file__, "--ask", str(max_loaded), "--data-dir", str(data_dir)]
                    + ["--models", str(N_MODELS)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            r = json.loads(out)
            label = "LRU (app default)" if max_loaded == DEFAULT_MAX_LOADED else "no bound        "
            start, after = r["start"], r["after"]
            growth[max_loaded] = after["pss_mb"] - start["pss_mb"]
            print(
                f"  {label} max_loaded={r['max_loaded']:>2}: RSS {start['rss_mb']:.0f} -> {after['rss_mb']:.0f} MB, "
                f"PSS {start['pss_mb']:.0f} -> {after['pss_mb']:.0f} MB, {r['loaded_now']} models in memory, "
                f"{r['errors']} errors, {r['seconds']} s"
            )

        bounded = growth[DEFAULT_MAX_LOADED] / growth[N_MODELS]
        print(f"  PSS growth with the LRU bound / without: {bounded:.2f} ({DEFAULT_MAX_LOADED} of {N_MODELS} loaded)")
        summary(Figure("memory.lru_growth_ratio", bounded, "<=", 0.5))


if __name__ == "__main__":
    main()
