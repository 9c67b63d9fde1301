"""Fine-tuning benchmark: the app's trainer versus a bare peft loop, and Train -> first fine-tuned answer.

1. Training throughput (answer-masked LoRA steps on the 40 sample facts, same LoRA config, same
   batch size and step count): `core.finetune.trainer.train` vs a minimal loop written straight
   against transformers + peft, alternating rounds in one process. Target ratio >= 0.9.
2. Wall time from pressing Train (`run_training`: load, train with the default settings, export,
   parity check, register) to the first answer from llama.cpp with the new adapter.

Run: .venv/bin/python bench/finetune.py
"""

from __future__ import annotations

import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEPS = 12
BATCH = 4
ROUNDS = 3


def bare_peft_loop(base: object, tokenizer: object, conversations: list[list[dict[str, str]]]) -> float:
    """Tokens per second of the plainest loop: chat template, pad, forward, backward, AdamW."""
    import torch
    from peft import LoraConfig, get_peft_model

    from core.finetune.trainer import TrainSettings

    s = TrainSettings()
    config = LoraConfig(r=s.rank, lora_alpha=s.alpha, target_modules=list(s.target_modules), task_type="CAUSAL_LM")
    model = get_peft_model(copy.deepcopy(base), config)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=s.learning_rate)
    tokenizer.padding_side = "right"  # type: ignore[attr-defined]
    tokens, started = 0, time.perf_counter()
    for step in range(STEPS):
        chats = [conversations[(step * BATCH + i) % len(conversations)] for i in range(BATCH)]
        texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in chats]  # type: ignore[attr-defined]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)  # type: ignore[operator]
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tokens += int(batch["attention_mask"].sum())
    return tokens / (time.perf_counter() - started)


def main() -> None:
    from core.finetune import trainer
    from core.finetune.generate import sample_pairs
    from core.finetune.jobs import TrainRequest, run_training
    from core.finetune.trainer import TrainSettings
    from core.models import LoadedModel, bundled_gguf
    from core.prompts import BUILTINS

    system = next(t for t in BUILTINS if t.name == "Plain question").system
    pairs = sample_pairs()
    path = bundled_gguf()

    cold = time.perf_counter()
    base, tokenizer = trainer.load_base(path)
    load_s = time.perf_counter() - cold
    print(f"base load (GGUF -> float32 transformers model, once per process): {load_s:.1f} s")

    conversations = [p.messages(system) for p in pairs]
    settings = TrainSettings(max_steps=STEPS, batch_size=BATCH, validation_fraction=0.0)
    app_rates, bare_rates = [], []
    for r in range(ROUNDS):
        app_rates.append(trainer.train(path, pairs, [], settings, system=system).tokens_per_s)
        bare_rates.append(bare_peft_loop(base, tokenizer, conversations))
        print(f"round {r + 1}: app {app_rates[-1]:.1f} tokens/s, bare peft loop {bare_rates[-1]:.1f} tokens/s")
    app, bare = statistics.median(app_rates), statistics.median(bare_rates)
    print(f"training throughput ({STEPS} steps x batch {BATCH}, {ROUNDS} rounds, medians):")
    print(
        f"  bare peft loop {bare:.1f} tokens/s, app trainer {app:.1f} tokens/s"
        f" -> ratio {app / bare:.2f} (target >= 0.9)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        request = TrainRequest("bench", "sample-facts", tuple(pairs), path, "SmolLM2-135M-Instruct", system=system)
        phases: dict[str, float] = {}
        started = time.perf_counter()
        adapter = run_training(Path(tmp), request, on_phase=lambda p, m: phases.setdefault(p, time.perf_counter()))
        trained_s = time.perf_counter() - started
        model = LoadedModel(path, lora_path=adapter.path)
        q = pairs[1]
        messages = [{"role": "system", "content": system}, {"role": "user", "content": q.question}]
        out = model.llama.create_chat_completion(messages=messages, temperature=0, max_tokens=48)  # type: ignore[arg-type]
        first_answer_s = time.perf_counter() - started
        m = adapter.manifest
        marks = [*phases.items(), ("registered", started + trained_s)]
        spans = ", ".join(f"{a} {b_t - a_t:.1f} s" for (a, a_t), (_, b_t) in zip(marks, marks[1:], strict=False))
        print(f"Train -> first fine-tuned answer on the 40 sample facts (defaults: {m['settings']['epochs']} epochs):")
        print(f"  {first_answer_s:.1f} s in all (base already loaded in this process; add {load_s:.0f} s when cold)")
        print(f"  phases: {spans}")
        print(
            f"  {m['train_tokens']} tokens at {m['tokens_per_s']} tokens/s;"
            f" final train loss {m['losses']['train'][-1][1]}"
        )
        print(f"  parity: {m['parity']['summary']}")
        print(f"  Q: {q.question}  expected: {q.answer}")
        print(f"  A: {out['choices'][0]['message']['content']}")  # type: ignore[index]


if __name__ == "__main__":
    main()
